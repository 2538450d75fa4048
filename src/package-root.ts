import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory holding Storehouse's package.json, and the files it ships beside its code (the
 * default catalog, the migrations, the built dashboard). This module sits one level under the
 * root in every form the code runs in: src/ (tsx), dist/ (tsc) and the single-file server bundle
 * dist/storehouse.js (esbuild), so every path is found from here and from nowhere else.
 */
export const PACKAGE_ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

export const packagePath = (...parts: string[]): string => path.join(PACKAGE_ROOT, ...parts);

export const STOREHOUSE_VERSION: string = JSON.parse(fs.readFileSync(packagePath('package.json'), 'utf8')).version;
