import type { ReportRound, RunReport } from './run-report.ts';

/**
 * The run report as one self-contained HTML page: inline styles, inline SVG
 * charts, no script and nothing fetched (its Content-Security-Policy forbids
 * it), so it can be archived or mailed as it is. Every string from the run
 * goes through `escapeHtml`.
 */

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const esc = escapeHtml;

interface Series {
  readonly name: string;
  readonly color: string;
  readonly points: readonly (readonly [number, number])[];
}

const WIDTH = 640;
const HEIGHT = 240;
const PAD = { left: 56, right: 16, top: 16, bottom: 40 };

function ticks(min: number, max: number, count = 5): number[] {
  if (max === min) return [min];
  return Array.from({ length: count }, (_, i) => min + ((max - min) * i) / (count - 1));
}

function label(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e6) return `${(x / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${(x / 1e3).toPrecision(3)}k`;
  return a >= 10 ? x.toFixed(0) : x.toPrecision(2);
}

/** A line chart over rounds, with axes, gridlines and a legend; `kind: 'bars'` draws grouped bars instead. */
export function svgChart(
  title: string,
  yLabel: string,
  series: readonly Series[],
  options: { yMin?: number; yMax?: number; kind?: 'lines' | 'bars' } = {},
): string {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return `<p class="muted">${esc(title)}: no data yet.</p>`;
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const bars = options.kind === 'bars';
  const xMin = Math.min(...xs) - (bars ? 0.5 : 0);
  const xMax = Math.max(...xs) + (bars ? 0.5 : 0);
  const yMin = options.yMin ?? Math.min(0, ...ys);
  let yMax = options.yMax ?? Math.max(...ys);
  if (yMax <= yMin) yMax = yMin + 1;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const sx = (x: number) => PAD.left + (xMax === xMin ? plotW / 2 : ((x - xMin) / (xMax - xMin)) * plotW);
  const sy = (y: number) => PAD.top + plotH - ((y - yMin) / (yMax - yMin)) * plotH;
  const parts: string[] = [];
  for (const t of ticks(yMin, yMax)) {
    parts.push(`<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e3e6ea"/>`);
    parts.push(`<text x="${PAD.left - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end">${esc(label(t))}</text>`);
  }
  const rounds = [...new Set(xs)].sort((a, b) => a - b);
  const step = Math.max(1, Math.ceil(rounds.length / 10));
  rounds.forEach((r, i) => {
    if (i % step === 0)
      parts.push(`<text x="${sx(r).toFixed(1)}" y="${HEIGHT - PAD.bottom + 16}" text-anchor="middle">${esc(String(r))}</text>`);
  });
  parts.push(`<text x="${PAD.left + plotW / 2}" y="${HEIGHT - 6}" text-anchor="middle">round</text>`);
  parts.push(
    `<text x="14" y="${PAD.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 14 ${PAD.top + plotH / 2})">${esc(yLabel)}</text>`,
  );
  parts.push(`<line x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${PAD.top + plotH}" stroke="#8a939e"/>`);
  parts.push(`<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${PAD.top + plotH}" y2="${PAD.top + plotH}" stroke="#8a939e"/>`);
  if (bars) {
    const slot = (plotW / Math.max(1, xMax - xMin)) * 0.8;
    const w = slot / series.length;
    series.forEach((s, k) => {
      for (const [x, y] of s.points) {
        const left = sx(x) - slot / 2 + k * w;
        parts.push(
          `<rect x="${left.toFixed(1)}" y="${sy(y).toFixed(1)}" width="${Math.max(1, w - 1).toFixed(1)}" height="${(sy(yMin) - sy(y)).toFixed(1)}" fill="${esc(s.color)}"><title>${esc(`${s.name}, round ${x}: ${y}`)}</title></rect>`,
        );
      }
    });
  } else {
    for (const s of series) {
      const path = s.points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
      parts.push(`<path d="${path}" fill="none" stroke="${esc(s.color)}" stroke-width="2"/>`);
      for (const [x, y] of s.points)
        parts.push(
          `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${esc(s.color)}"><title>${esc(`${s.name}, round ${x}: ${y}`)}</title></circle>`,
        );
    }
  }
  const legend = series
    .map(
      (s, i) =>
        `<rect x="${PAD.left + 8 + i * 150}" y="${PAD.top - 12}" width="10" height="10" fill="${esc(s.color)}"/><text x="${PAD.left + 22 + i * 150}" y="${PAD.top - 3}">${esc(s.name)}</text>`,
    )
    .join('');
  return (
    `<figure><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${esc(title)}" font-size="11" font-family="system-ui, sans-serif">` +
    `<title>${esc(title)}</title>${parts.join('')}${legend}</svg><figcaption>${esc(title)}</figcaption></figure>`
  );
}

const fmt = {
  pct: (x: number | undefined) => (x === undefined ? '–' : `${(x * 100).toFixed(2)}%`),
  num: (x: number | undefined, digits = 4) => (x === undefined ? '–' : x.toFixed(digits)),
  count: (n: number | undefined) => (n === undefined ? '–' : String(n)),
  bytes: (n: number | undefined) => (n === undefined ? '–' : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`),
  secs: (ms: number | undefined) => (ms === undefined ? '–' : `${(ms / 1000).toFixed(1)} s`),
};

function row(cells: readonly string[], header = false): string {
  const tag = header ? 'th' : 'td';
  return `<tr>${cells.map((c) => `<${tag}${header ? ' scope="col"' : ''}>${esc(c)}</${tag}>`).join('')}</tr>`;
}

function facts(entries: readonly (readonly [string, string])[]): string {
  return `<dl>${entries.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

/** Async mode: a version's staleness, "max 2, mean 0.60; by s: 3 1 1" (updates of staleness 0, 1, 2). */
function staleness(r: ReportRound): string {
  const s = r.staleness;
  return s ? `max ${s.max}, mean ${s.mean.toFixed(2)}; by s: ${s.counts.join(' ')}` : '–';
}

function roundsTable(rounds: readonly ReportRound[], withheld: boolean): string {
  // Under client-level DP the rounds carry no participation (RunReport.participationWithheld): no empty columns.
  const asynchronous = rounds.some((r) => r.staleness);
  const head = withheld
    ? row(['Round', 'Outcome', 'Accuracy', 'Loss', 'ε'], true)
    : row(
        [
          'Round',
          'Outcome',
          'Accuracy',
          'Loss',
          'Selected',
          'Received',
          'Dropped',
          'Rejected',
          'Declined',
          'In / out',
          'Duration',
          ...(asynchronous ? ['Staleness'] : []),
          'ε',
          'Reason',
        ],
        true,
      );
  const body = rounds
    .map((r) =>
      row(
        withheld
          ? [String(r.round), r.outcome, fmt.pct(r.accuracy), fmt.num(r.loss), fmt.num(r.epsilon, 3)]
          : [
              String(r.round),
              r.outcome,
              fmt.pct(r.accuracy),
              fmt.num(r.loss),
              fmt.count(r.selected),
              fmt.count(r.received),
              fmt.count(r.dropped),
              fmt.count(r.rejected),
              fmt.count(r.declined),
              `${fmt.bytes(r.bytesIn)} / ${fmt.bytes(r.bytesOut)}`,
              fmt.secs(r.durationMs),
              ...(asynchronous ? [staleness(r)] : []),
              fmt.num(r.epsilon, 3),
              r.reason ?? '',
            ],
      ),
    )
    .join('');
  return `<div class="scroll"><table><thead>${head}</thead><tbody>${body}</tbody></table></div>`;
}

const STYLE = `
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d232b;background:#f3f5f7;margin:0}
main{max-width:980px;margin:0 auto;padding:1rem;display:grid;gap:1rem}
section{background:#fff;border:1px solid #d8dde3;border-radius:8px;padding:1rem}
h1{font-size:1.5rem;margin:.5rem 0 0}h2{font-size:1.05rem;margin:0 0 .5rem}
.muted{color:#5a6472}dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}dt{color:#5a6472}dd{margin:0}
figure{margin:0}svg{width:100%;height:auto;max-width:640px}figcaption{color:#5a6472;font-size:.9rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.88rem;width:100%}th,td{text-align:left;padding:.3rem .45rem;border-bottom:1px solid #d8dde3;white-space:nowrap}
.big{font-size:1.6rem;font-weight:700;margin:0}`;

export function renderReportHtml(report: RunReport): string {
  const { task, outcome, privacy, audit, rounds, config } = report;
  const s = config.settings;
  const measured = rounds.filter((r) => r.accuracy !== undefined);
  const charts = [
    svgChart(
      'Test accuracy per round',
      'accuracy',
      [{ name: 'accuracy', color: '#1b7f5b', points: measured.map((r) => [r.round, r.accuracy!]) }],
      { yMin: 0, yMax: 1 },
    ),
    svgChart('Test loss per round', 'loss', [{ name: 'loss', color: '#b3541e', points: measured.map((r) => [r.round, r.loss!]) }], {
      yMin: 0,
    }),
  ];
  const withheld = report.participationWithheld;
  if (withheld === undefined) {
    const counted = (pick: (r: ReportRound) => number | undefined) =>
      rounds.flatMap((r): [number, number][] => {
        const n = pick(r);
        return n === undefined ? [] : [[r.round, n]];
      });
    charts.push(
      svgChart(
        'Participants per round',
        'participants',
        [
          { name: 'selected', color: '#8aa9d6', points: counted((r) => r.selected) },
          { name: 'received', color: '#1f5fbf', points: counted((r) => r.received) },
        ],
        { yMin: 0, kind: 'bars' },
      ),
    );
  }
  const withEpsilon = rounds.filter((r) => r.epsilon !== undefined);
  if (withEpsilon.length > 0)
    charts.push(
      svgChart(
        'Privacy spent: ε after each round',
        'ε',
        [{ name: 'ε', color: '#6b3fa0', points: withEpsilon.map((r) => [r.round, r.epsilon!]) }],
        { yMin: 0 },
      ),
    );

  const auditSection = audit.available
    ? `<p class="big">AUC ${esc(audit.auc.toFixed(3))}</p>` +
      facts([
        ['Attack', `loss threshold (lower loss ⇒ "member"), on the model of version ${audit.modelVersion}`],
        ['Members', `${audit.members} (${audit.membersSource}), mean loss ${audit.meanMemberLoss.toFixed(4)}`],
        ['Non-members', `${audit.nonMembers} (${audit.nonMembersSource}), mean loss ${audit.meanNonMemberLoss.toFixed(4)}`],
        ['Attack advantage', `${audit.advantage.toFixed(3)} (max TPR − FPR over thresholds)`],
        ['Computed in', `${audit.durationMs.toFixed(0)} ms`],
      ]) +
      `<p class="muted">${esc(audit.interpretation)}</p>`
    : `<p>The membership-inference audit is unavailable: ${esc(audit.reason)}</p>`;

  const withheldNote = withheld === undefined ? '' : `<p class="muted">${esc(withheld)}</p>`;

  const configFacts = facts([
    ['Strategy', config.strategy],
    ['Rounds', `${s.rounds}${s.targetAccuracy !== undefined ? `, or until test accuracy ${s.targetAccuracy}` : ''}`],
    [
      'Participants',
      privacy.kind === 'client-level'
        ? // DP-FedAvg samples each eligible participant and ignores clients per round.
          `${s.minClients}+ to start a round, each eligible participant selected at random${privacy.options ? ` with probability ${privacy.options.sampleRate}` : ''}`
        : `${s.minClients}+ to start a round, ${s.clientsPerRound} selected per round, ${s.minUpdates}+ updates to aggregate`,
    ],
    ['Deadline', `${(s.roundTimeoutMs / 1000).toFixed(0)} s${s.adaptiveDeadline ? ' (adaptive)' : ''}`],
    ['Local training', `${s.fit.epochs} epoch(s), batch ${s.fit.batchSize}, learning rate ${s.fit.learningRate}`],
    [
      'Secure aggregation',
      s.secureAggregation ? `on (neighbours ${s.secureAggregation.neighbours}, clip range ${s.secureAggregation.clipRange})` : 'off',
    ],
  ]);

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(`Run report: ${task.name}`)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<header><h1>${esc(`Run report: ${task.name}`)}</h1><p class="muted">${esc(`${report.final ? 'Final' : 'Interim (the federation is still running)'} · generated ${report.generatedAt}`)}</p></header>
<section aria-labelledby="h-task"><h2 id="h-task">Task</h2>${facts([
    ['Task', task.description],
    ['Model', `${task.architecture}, ${task.paramCount.toLocaleString('en')} parameters, ${task.classes} classes`],
  ])}</section>
<section aria-labelledby="h-outcome"><h2 id="h-outcome">Outcome</h2><p class="big">${esc(fmt.pct(outcome.finalMetrics?.accuracy))}</p>${facts(
    [
      ['Final test loss', fmt.num(outcome.finalMetrics?.loss)],
      [
        'Final model',
        outcome.finalRound === undefined
          ? '–'
          : `round ${outcome.finalRound}: ${fmt.pct(outcome.finalMetrics?.accuracy)}, loss ${fmt.num(outcome.finalMetrics?.loss)} (model.json, weights.bin)`,
      ],
      [
        'Best model',
        outcome.best
          ? `round ${outcome.best.round}: ${fmt.pct(outcome.best.accuracy)}, loss ${fmt.num(outcome.best.loss)} (best/model.json, best/weights.bin)`
          : '–',
      ],
      ['Rounds', `${outcome.rounds} (${outcome.aggregated} aggregated, ${outcome.skipped} skipped); model version ${outcome.modelVersion}`],
      ['State', `${outcome.control}${outcome.doneReason ? `: ${outcome.doneReason}` : ''}`],
      ...(outcome.participantsSeen === undefined ? [] : [['Participants seen', String(outcome.participantsSeen)] as const]),
      ['Started', outcome.startedAt],
    ],
  )}</section>
<section aria-labelledby="h-privacy"><h2 id="h-privacy">Privacy</h2><p>${esc(privacy.statement)}</p>${withheldNote}</section>
<section aria-labelledby="h-audit"><h2 id="h-audit">Membership-inference audit</h2>${auditSection}</section>
<section aria-labelledby="h-charts"><h2 id="h-charts">Per round</h2>${charts.join('')}</section>
<section aria-labelledby="h-config"><h2 id="h-config">Configuration</h2>${configFacts}</section>
<section aria-labelledby="h-rounds"><h2 id="h-rounds">Rounds</h2>${withheldNote}${roundsTable(rounds, withheld !== undefined)}</section>
</main>
</body>
</html>
`;
}
