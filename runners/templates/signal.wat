;; Template: a signal. +1 when x rose over `lookback` bars, -1 when it fell, else 0 (ABI v1).
;; Input: 1 column (x). Output: 1 column (signal). Params: [lookback].
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (global $lookback (mut i32) (i32.const 20))

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

  (func (export "set_params") (param $ptr i32) (param $count i32)
    (if (i32.gt_s (local.get $count) (i32.const 0))
      (then (global.set $lookback (i32.trunc_f64_s (f64.load (local.get $ptr)))))))

  (func (export "run") (param $in i32) (param $n i32) (param $out i32) (result i32)
    (local $i i32) (local $off i32) (local $d f64) (local $s f64)
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $off (i32.shl (local.get $i) (i32.const 3)))
        (local.set $s (f64.const 0))
        (if (i32.ge_u (local.get $i) (global.get $lookback))
          (then
            (local.set $d
              (f64.sub
                (f64.load (i32.add (local.get $in) (local.get $off)))
                (f64.load (i32.add (local.get $in)
                  (i32.shl (i32.sub (local.get $i) (global.get $lookback)) (i32.const 3))))))
            (if (f64.gt (local.get $d) (f64.const 0)) (then (local.set $s (f64.const 1))))
            (if (f64.lt (local.get $d) (f64.const 0)) (then (local.set $s (f64.const -1))))))
        (f64.store (i32.add (local.get $out) (local.get $off)) (local.get $s))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0)))
