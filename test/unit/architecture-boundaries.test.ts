import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

/** The written import rules: core is isomorphic; web and coordinator meet only in core. */

const root = path.resolve(import.meta.dirname, '../..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(root, dir))) {
    const rel = path.join(dir, name);
    if (statSync(path.join(root, rel)).isDirectory()) out.push(...sources(rel));
    else if (/\.ts$/.test(name) && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

function imports(file: string): string[] {
  const text = readFileSync(path.join(root, file), 'utf8');
  return [
    ...text.matchAll(
      /(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g,
    ),
  ].map((m) => m[1] ?? m[2] ?? m[3]!);
}

function resolvedFolder(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  return path.relative(root, path.resolve(root, path.dirname(file), specifier)).split(path.sep)[0];
}

describe('architecture boundaries', () => {
  it('core imports neither Node built-ins nor web or coordinator code', () => {
    for (const file of sources('core')) {
      for (const spec of imports(file)) {
        assert.ok(!spec.startsWith('node:') && !['fs', 'path', 'http', 'crypto', 'os', 'net'].includes(spec), `${file} imports ${spec}`);
        const folder = resolvedFolder(file, spec);
        assert.ok(folder === undefined || folder === 'core', `${file} imports ${spec} outside core`);
      }
    }
  });

  it('web never imports the coordinator, and the coordinator never imports web', () => {
    for (const [from, forbidden] of [
      ['web', 'coordinator'],
      ['coordinator', 'web'],
    ] as const) {
      for (const file of sources(from)) {
        for (const spec of imports(file)) assert.notEqual(resolvedFolder(file, spec), forbidden, `${file} imports ${spec}`);
      }
    }
  });

  it('found the files it checks', () => {
    assert.ok(sources('core').length > 10);
    assert.ok(imports('coordinator/server.ts').some((s) => s.startsWith('../core/')));
  });
});
