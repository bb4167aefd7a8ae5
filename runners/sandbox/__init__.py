"""The in-container entrypoints (python_entry.py, wasm_entry.py, node_entry.js).

They run inside the sandbox image with only the language runtime (and numpy/pandas/pyarrow and
wasmtime for Python), so they import nothing from Alpha Forge. ``ENTRY_DIR`` is where the image
build and the development process runner find them.
"""

from pathlib import Path

ENTRY_DIR = Path(__file__).resolve().parent
