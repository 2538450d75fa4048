/**
 * The project's docs stand on their own: code and docs cite the project's own docs/ pages (not a
 * reference file a contributor who clones the project does not have), and every section they
 * cite exists there. No server: it reads files.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

// Not helpers.ts's ROOT: importing the harness loads the whole server, and this test needs none.
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const SCANNED_DIRS = ['src', 'test', 'bench', 'fuzz', 'chaos', 'docs'];
const SCANNED_ROOT_FILES = ['README.md', 'CONTRIBUTING.md', 'CHANGELOG.md'];

function filesUnder(dir: string): string[] {
  const full = path.join(ROOT, dir);
  if (!fs.existsSync(full)) return [];
  return fs
    .readdirSync(full, { recursive: true, encoding: 'utf8' })
    .filter((name) => /\.(ts|md)$/.test(name))
    .map((name) => path.join(dir, name));
}

const scanned = [...SCANNED_DIRS.flatMap(filesUnder), ...SCANNED_ROOT_FILES.filter((file) => fs.existsSync(path.join(ROOT, file)))];
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

/** The section numbers a docs page has: "## 1. Transport" → 1, "### 1.3 Resource endpoints" → 1.3. */
function sectionsOf(page: string): Set<string> {
  const sections = new Set<string>();
  for (const match of read(page).matchAll(/^#{2,4} ([0-9]+(?:\.[0-9]+)*)\.?\s/gm)) sections.add(match[1]!);
  return sections;
}

describe('docs', () => {
  test('the files scanned include the code that cites the docs', () => {
    assert.ok(scanned.includes(path.join('src', 'providers', 'http.ts')), `scanned: ${scanned.length} files`);
    assert.ok(scanned.includes(path.join('docs', 'partner-api.md')));
  });

  test('nothing cites a reference file outside the repository', () => {
    // Built from parts so this file does not match itself.
    const outside = new RegExp(['shared', 'reference'].join('/'));
    const citing = scanned.filter((file) => outside.test(read(file)));
    assert.deepEqual(citing, [], 'cite docs/partner-api.md or docs/vercel-api.md instead');
  });

  test('every cited section of docs/partner-api.md and docs/vercel-api.md exists', () => {
    const pages = { 'partner-api': sectionsOf('docs/partner-api.md'), 'vercel-api': sectionsOf('docs/vercel-api.md') };
    assert.ok(pages['partner-api'].has('1.3') && pages['vercel-api'].has('8.8'), 'the headings are numbered');
    const missing: string[] = [];
    let cited = 0;
    for (const file of scanned) {
      // "docs/partner-api.md §2.2, §5" or "docs/partner-api.md §1.1–1.4": every number after the page's name.
      for (const match of read(file).matchAll(/docs\/(partner-api|vercel-api)\.md((?:[ ,;]*§[0-9.]+(?:[–-][0-9.]+)?)+)/g)) {
        const page = match[1] as keyof typeof pages;
        for (const section of match[2]!.match(/[0-9]+(?:\.[0-9]+)*/g) ?? []) {
          cited++;
          if (!pages[page].has(section)) missing.push(`${file}: docs/${page}.md §${section}`);
        }
      }
    }
    assert.ok(cited >= 20, `only ${cited} citations found: is the pattern still right?`);
    assert.deepEqual(missing, []);
  });
});
