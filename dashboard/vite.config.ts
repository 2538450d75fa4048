/**
 * The web dashboard's build (`npm run build` runs it after tsc): dashboard/ into dist/dashboard/,
 * served by Storehouse itself under /dashboard/ (src/http/routes/dashboard.ts). Asset names carry
 * a hash of their content, which is why the server may cache them for good.
 */
import { fileURLToPath } from 'node:url';
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/dashboard/',
  plugins: [preact()],
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard/', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    // Nothing is loaded from elsewhere at run time, and old browsers are not the audience.
    target: 'es2022',
    sourcemap: false,
  },
  logLevel: 'warn',
});
