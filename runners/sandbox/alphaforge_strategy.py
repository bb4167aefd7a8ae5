"""The strategy SDK: what a strategy module imports (``from alphaforge_strategy import ...``).

A strategy module defines exactly one :class:`Strategy` subclass: ``CONFIG_SCHEMA`` (a JSON
Schema object; its top-level ``default`` values fill the config), ``init()`` (the runtime
state), ``on_tick(tick)`` (one closed bar, see runners/papertrade/bars.py ``Bar.tick``) and
``render()``
(``{"widgets": [...]}``, built with :func:`metric`, :func:`line_chart`, :func:`table` and
:func:`log_widget`). It sees the world only through ``self.context`` (:class:`Context`).

The mode lives only in the context: a strategy runs the same logic in ``observe`` and
``active``; in ``observe`` :meth:`Context.place_order` and :meth:`Context.cancel_order` record
the attempt (an intent marked ``refused``) and raise :class:`ModeError`. Orders are not placed
here: each call records an intent, which the host (runners/strategyhost.py) receives with the
tick's reply and hands to the venue.

Standalone: runs inside the strategy sandbox (strategy_entry.py) and imports nothing from Alpha
Forge (the image has only the runtime, numpy and pandas).
"""

import math
import uuid
from typing import Any, ClassVar

__all__ = [
    "Context",
    "ModeError",
    "Strategy",
    "config_with_defaults",
    "line_chart",
    "log_widget",
    "metric",
    "table",
]

MODES = ("observe", "active")
MAX_ORDERS_PER_TICK = 100
MAX_SYMBOL = 32
_SIDES = ("buy", "sell")
_ORDER_TYPES = ("market", "limit")


class ModeError(Exception):
    """An order or cancel the instance's mode does not allow (observe: recorded, never sent)."""


def _finite(value, what):
    """``value`` as a finite float, else ValueError naming ``what``."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {number!r}")
    return number


class Context:
    """What a strategy may see and do; built by the sandbox's entrypoint.

    ``identity`` is the instance's immutable identity (id, strategy type, account, market).
    Between ticks the context keeps the last tick; account figures (cash, positions, open
    orders, prices) are the ones the engine sent with the current tick.
    """

    def __init__(self, identity, mode, log=None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self._identity = dict(identity or {})
        self._mode = mode
        self._log = log
        self._lines = []
        self._tick = None
        self._account = None
        self._in_tick = False
        self._intents = []
        self._pending = []
        self._session = uuid.uuid4().hex[:8]
        self._seq = 0

    # -- what the strategy reads ----------------------------------------------------------------

    @property
    def identity(self):
        """The instance's identity (a copy): ``id``, ``strategy_type``, ``account``, ``market``."""
        return dict(self._identity)

    def now(self):
        """The current tick's ``ts`` (ISO 8601, UTC), None before the first tick."""
        return None if self._tick is None else self._tick.get("ts")

    def get_price(self, symbol=None):
        """The last price of ``symbol`` (default: the tick's symbol, whose price is the close)."""
        tick = self._need_tick("get_price")
        if symbol is None or symbol == tick.get("symbol"):
            return float(tick["price"])
        prices = self._account.get("prices") or {}
        if symbol not in prices:
            raise ValueError(
                f"get_price: no price for {symbol!r}; this instance's ticks are for "
                f"{tick.get('symbol')!r}"
            )
        return float(prices[symbol])

    def get_position(self, symbol=None):
        """The held quantity of ``symbol`` (default: the tick's symbol); 0.0 when flat."""
        self._need_tick("get_position")
        positions = self._account.get("positions") or {}
        return float(positions.get(symbol or self._default_symbol(), 0.0))

    def get_cash(self):
        """The account's free cash (quote currency)."""
        self._need_tick("get_cash")
        if "cash" not in self._account:
            raise RuntimeError("get_cash: the engine sent no cash figure with this tick")
        return float(self._account["cash"])

    def get_orders(self):
        """Open orders: the venue's (as of this tick) and those placed during this tick
        (``status`` ``"new"``), each a dict with ``client_id``, ``symbol``, ``side``, ``qty``,
        ``type``, ``limit_price`` and ``status``."""
        self._need_tick("get_orders")
        orders = [dict(o) for o in self._account.get("open_orders") or []]
        return orders + [dict(o) for o in self._pending]

    # -- what the strategy does -----------------------------------------------------------------

    def place_order(self, side, qty, type="market", limit_price=None, symbol=None):
        """Place an order; returns its client order id. ``side`` buy/sell, ``qty`` > 0,
        ``type`` market/limit (a limit order needs ``limit_price``). In observe mode the
        attempt is recorded as refused and :class:`ModeError` raised."""
        side, qty, type, limit_price, symbol = self._checked_order(
            side, qty, type, limit_price, symbol
        )
        if not self._in_tick:
            raise RuntimeError("place_order: orders are placed from on_tick only")
        if len(self._intents) >= MAX_ORDERS_PER_TICK:
            raise RuntimeError(f"place_order: at most {MAX_ORDERS_PER_TICK} orders per tick")
        self._seq += 1
        order = {
            "client_id": f"af-{self._session}-{self._seq}",
            "symbol": symbol,
            "side": side,
            "qty": qty,
            "type": type,
            "limit_price": limit_price,
        }
        if self._mode != "active":
            price = "at market" if type == "market" else f"limit {limit_price:g}"
            message = (
                f"{self._mode} mode: orders are recorded, never placed: "
                f"{side} {qty:g} {symbol} {price}"
            )
            self._intents.append({"op": "place", **order, "refused": message})
            raise ModeError(message)
        self._intents.append({"op": "place", **order})
        self._pending.append({**order, "status": "new"})
        return order["client_id"]

    def cancel_order(self, client_id):
        """Cancel an open order by its client order id (observe: recorded, ModeError)."""
        if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
            raise ValueError(f"cancel_order: client_id must be an order's id, got {client_id!r}")
        if not self._in_tick:
            raise RuntimeError("cancel_order: orders are cancelled from on_tick only")
        if len(self._intents) >= MAX_ORDERS_PER_TICK:
            raise RuntimeError(f"cancel_order: at most {MAX_ORDERS_PER_TICK} orders per tick")
        if self._mode != "active":
            message = f"{self._mode} mode: cancels are recorded, never sent: cancel {client_id}"
            self._intents.append({"op": "cancel", "client_id": client_id, "refused": message})
            raise ModeError(message)
        self._intents.append({"op": "cancel", "client_id": client_id})
        self._pending = [o for o in self._pending if o["client_id"] != client_id]

    def log(self, message):
        """One line in the instance's log (as print() does)."""
        line = str(message)
        if self._log is not None:
            self._log(line)
        else:
            self._lines.append(line)

    # -- the entrypoint's side --------------------------------------------------------------------

    def _begin(self, tick, account):
        """A tick starts: its bar and the account it is answered from."""
        if not isinstance(tick, dict) or "price" not in tick:
            raise ValueError("a tick is a dict with at least a price")
        self._tick = dict(tick)
        self._account = dict(account or {})
        self._intents = []
        self._pending = []
        self._in_tick = True

    def _end(self):
        """The tick ended: the intents it recorded."""
        self._in_tick = False
        intents, self._intents, self._pending = self._intents, [], []
        return intents

    def _set_mode(self, mode):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self._mode = mode

    def _need_tick(self, name):
        if self._tick is None or self._account is None:
            raise RuntimeError(
                f"{name}: the market and the account are known from the first tick on "
                "(init runs before any tick)"
            )
        return self._tick

    def _default_symbol(self):
        if self._tick is not None and self._tick.get("symbol"):
            return str(self._tick["symbol"])
        market = self._identity.get("symbol") or self._identity.get("market")
        if not market:
            raise ValueError("no symbol given and the instance has no market")
        return str(market)

    def _checked_order(self, side, qty, type, limit_price, symbol):
        side = side.lower() if isinstance(side, str) else side
        if side not in _SIDES:
            raise ValueError(f"place_order: side must be 'buy' or 'sell', got {side!r}")
        qty = _finite(qty, "place_order: qty")
        if qty <= 0:
            raise ValueError(f"place_order: qty must be above 0, got {qty:g}")
        if type not in _ORDER_TYPES:
            raise ValueError(f"place_order: type must be 'market' or 'limit', got {type!r}")
        if type == "limit":
            if limit_price is None:
                raise ValueError("place_order: a limit order needs a limit_price")
            limit_price = _finite(limit_price, "place_order: limit_price")
            if limit_price <= 0:
                raise ValueError(f"place_order: limit_price must be above 0, got {limit_price:g}")
        elif limit_price is not None:
            raise ValueError("place_order: a market order takes no limit_price")
        symbol = self._default_symbol() if symbol is None else symbol
        if not isinstance(symbol, str) or not symbol or len(symbol) > MAX_SYMBOL:
            raise ValueError(f"place_order: symbol must be a market's name, got {symbol!r}")
        return side, qty, type, limit_price, symbol


class Strategy:
    """The base of every strategy (the seed's contract). Subclass it once per module."""

    CONFIG_SCHEMA: ClassVar[dict[str, Any]] = {}

    def __init__(self, context, config):
        self.context = context
        self.config = config
        self.state = self.init()

    def init(self):
        """The initial runtime state (any value; a dict by convention)."""
        return {}

    def on_tick(self, tick):
        """One closed bar: ``symbol``, ``ts``, ``interval``, OHLCV and ``price`` (the close)."""

    def render(self):
        """The instance's runtime UI: ``{"widgets": [...]}``."""
        return {"widgets": []}


def config_with_defaults(schema, config):
    """``config`` with the top-level ``default`` of each property in ``schema`` it lacks."""
    if not isinstance(schema, dict):
        raise TypeError(
            f"CONFIG_SCHEMA must be a dict (a JSON Schema), got {type(schema).__name__}"
        )
    merged = dict(config or {})
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, spec in properties.items():
            if name not in merged and isinstance(spec, dict) and "default" in spec:
                merged[name] = spec["default"]
    return merged


# -- widgets ------------------------------------------------------------------------------------


def _label(label):
    return str(label)


def _cell(value):
    """A table cell or metric value: text (times as ISO text), a finite number, a bool, or None
    (NaN shows empty)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if callable(getattr(value, "isoformat", None)):
        return value.isoformat()  # a datetime or Timestamp
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def _x(value):
    if isinstance(value, str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return _finite(value, "a chart point's x")


def metric(label, value):
    """A single figure: ``{"type": "metric", "label", "value"}`` (NaN shows empty)."""
    return {"type": "metric", "label": _label(label), "value": _cell(value)}


def line_chart(label, points):
    """A line: ``points`` as ``[(x, y), ...]`` or a pandas Series (index → x). x is a number or
    a time (ISO text); points whose y is missing or NaN are left out (gaps)."""
    if hasattr(points, "items") and hasattr(points, "index"):
        points = points.items()
    out = []
    for point in points:
        x, y = point
        if y is None:
            continue
        y = float(y)
        if math.isnan(y):
            continue
        out.append([_x(x), _finite(y, f"line_chart {label!r}: y")])
    return {"type": "line_chart", "label": _label(label), "points": out}


def table(columns, rows, label=None):
    """A table: ``columns`` names, ``rows`` lists of cells (text, numbers, bools)."""
    columns = [str(c) for c in columns]
    body = []
    for i, row in enumerate(rows):
        row = list(row)
        if len(row) != len(columns):
            raise ValueError(f"table: row {i} has {len(row)} cells for {len(columns)} columns")
        body.append([_cell(v) for v in row])
    widget = {"type": "table", "columns": columns, "rows": body}
    if label is not None:
        widget["label"] = _label(label)
    return widget


def log_widget(lines, label=None):
    """Lines of text: ``{"type": "log", "lines": [...]}``."""
    widget = {"type": "log", "lines": [str(line) for line in lines]}
    if label is not None:
        widget["label"] = _label(label)
    return widget
