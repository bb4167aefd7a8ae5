import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import tailwindcss from '@tailwindcss/vite';

// The API serves ui/dist at `/`; in development Vite proxies /api to a local `alphaforge serve`.
export default defineConfig({
  plugins: [tailwindcss(), svelte()],
  server: {
    proxy: {
      '/api': { target: 'http://127.0.0.1:8000', changeOrigin: true },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Monaco is one big lazily-loaded chunk; do not warn about it.
    chunkSizeWarningLimit: 5000,
    // No data: URIs (fonts, images): the CSP allows assets from 'self' only.
    assetsInlineLimit: 0,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
