/* Exponential moving average as a WASM ABI v1 module, compiled from C (see ../WASM_ABI.md).
 *
 *   clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,--export-dynamic \
 *         -o ema.wasm ema.c
 *
 * Input: 1 column (x). Output: 1 column (ema). Params: [span].
 */
extern unsigned char __heap_base;
static unsigned long heap_top = 0;
static double span = 20.0;

__attribute__((export_name("alloc"))) void *alloc(unsigned long n_bytes) {
  if (heap_top == 0) heap_top = (unsigned long)&__heap_base;
  unsigned long p = (heap_top + 7) & ~7UL;
  unsigned long end = p + n_bytes;
  unsigned long have = __builtin_wasm_memory_size(0) * 65536UL;
  if (end > have) {
    unsigned long pages = (end - have + 65535) / 65536;
    if (__builtin_wasm_memory_grow(0, pages) == (unsigned long)-1) return 0;
  }
  heap_top = end;
  return (void *)p;
}

__attribute__((export_name("set_params"))) void set_params(const double *values, int count) {
  if (count > 0) span = values[0];
}

__attribute__((export_name("run"))) int run(const double *in, int n, double *out) {
  if (n <= 0) return 0;
  const double alpha = 2.0 / (span + 1.0);
  double prev = in[0];
  out[0] = prev;
  for (int i = 1; i < n; i++) {
    prev += alpha * (in[i] - prev);
    out[i] = prev;
  }
  return 0;
}
