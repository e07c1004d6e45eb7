import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

/**
 * No module of the product imports itself back through others, type-only
 * imports included: a cycle makes load order matter and blocks splitting
 * the code. Relative imports only (packages cannot import back).
 */

const ROOTS = ['core', 'coordinator', 'web', 'node'];
const IMPORT = /^\s*(?:import|export)\s[^'"]*?\sfrom\s*['"](\.[^'"]+)['"]|^\s*import\s*['"](\.[^'"]+)['"]/gm;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sources(file);
    return entry.name.endsWith('.ts') ? [file] : [];
  });
}

function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of ROOTS.flatMap(sources)) {
    const text = readFileSync(file, 'utf8');
    const targets = [...text.matchAll(IMPORT)].flatMap((m) => {
      const target = m[1] ?? m[2];
      return target === undefined ? [] : [path.join(path.dirname(file), target)];
    });
    graph.set(file, targets);
  }
  return graph;
}

/** Each cycle once, as a path that starts and ends at the same file. */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (state.get(next) === undefined) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return found;
}

describe('imports', () => {
  it('form no cycle in core/, coordinator/, web/ and node/', () => {
    const graph = importGraph();
    assert.ok(graph.size > 100, `found the sources (${graph.size} files)`);
    assert.ok(
      [...graph.values()].some((targets) => targets.length > 0),
      'found their imports',
    );
    assert.deepEqual(
      cycles(graph).map((cycle) => cycle.join(' -> ')),
      [],
    );
  });

  it('would report one (the check itself)', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['a.ts']],
    ]);
    assert.deepEqual(cycles(graph), [['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
  });
});
