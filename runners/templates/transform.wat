;; Template: a frame transform. Bar features from OHLCV (WASM ABI v1).
;; Input: 5 columns (open, high, low, close, volume), column-major, n rows each.
;; Output: 2 columns (ret, range): ret = close[i] / close[i-1] - 1 (NaN first), range =
;; (high - low) / close. No params.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))

  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $pages i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (local.set $pages (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then unreachable))))
    (global.set $heap (i32.and (i32.add (local.get $end) (i32.const 7)) (i32.const -8)))
    (local.get $p))

  (func (export "run") (param $in i32) (param $n i32) (param $out i32) (result i32)
    (local $i i32) (local $off i32) (local $col i32)
    (local $high i32) (local $low i32) (local $close i32) (local $range i32)
    (local.set $col (i32.shl (local.get $n) (i32.const 3)))
    (local.set $high (i32.add (local.get $in) (local.get $col)))
    (local.set $low (i32.add (local.get $high) (local.get $col)))
    (local.set $close (i32.add (local.get $low) (local.get $col)))
    (local.set $range (i32.add (local.get $out) (local.get $col)))
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $off (i32.shl (local.get $i) (i32.const 3)))
        (f64.store (i32.add (local.get $out) (local.get $off))
          (if (result f64) (i32.eqz (local.get $i))
            (then (f64.const nan))
            (else
              (f64.sub
                (f64.div
                  (f64.load (i32.add (local.get $close) (local.get $off)))
                  (f64.load (i32.sub (i32.add (local.get $close) (local.get $off)) (i32.const 8))))
                (f64.const 1)))))
        (f64.store (i32.add (local.get $range) (local.get $off))
          (f64.div
            (f64.sub
              (f64.load (i32.add (local.get $high) (local.get $off)))
              (f64.load (i32.add (local.get $low) (local.get $off))))
            (f64.load (i32.add (local.get $close) (local.get $off)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0)))
