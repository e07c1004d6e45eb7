import { Chart } from 'chart.js';
import type { FederationStatus, RoundRecord } from '../../core/protocol/status.ts';

/**
 * The dashboard's async-mode panel (docs/async.md): model versions over
 * time, the staleness histogram of every buffered update, who is training
 * now, and updates per minute. Hidden in sync mode. Charts are made on the
 * first async status, after main.ts registered Chart.js's parts.
 */

/** Versions the updates-per-minute rate is taken over (the most recent ones). */
const RATE_WINDOW_VERSIONS = 10;

interface AsyncCharts {
  readonly versions: Chart<'line', { x: number; y: number }[]>;
  readonly staleness: Chart<'bar', number[], string>;
}

let charts: AsyncCharts | undefined;

const $ = (id: string) => document.getElementById(id)!;

function makeCharts(): AsyncCharts {
  const versions = new Chart<'line', { x: number; y: number }[]>($('async-versions-chart') as HTMLCanvasElement, {
    type: 'line',
    data: { datasets: [{ label: 'model version', data: [], borderColor: '#1b7f5b', stepped: true, pointRadius: 0 }] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: {
        x: { type: 'linear', min: 0, title: { display: true, text: 'seconds since the first version opened' } },
        y: { min: 0, title: { display: true, text: 'version' } },
      },
    },
  });
  const staleness = new Chart<'bar', number[], string>($('async-staleness-chart') as HTMLCanvasElement, {
    type: 'bar',
    data: { labels: [], datasets: [{ label: 'buffered updates', data: [], backgroundColor: '#8aa9d6' }] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: { y: { min: 0, title: { display: true, text: 'updates' } }, x: { title: { display: true, text: 'staleness (versions)' } } },
    },
  });
  return { versions, staleness };
}

/** Buffered updates of each staleness, over every version in the history. */
export function stalenessHistogram(history: readonly RoundRecord[]): number[] {
  const counts: number[] = [];
  for (const record of history) {
    record.staleness?.counts.forEach((n, s) => {
      counts[s] = (counts[s] ?? 0) + n;
    });
  }
  return Array.from(counts, (n) => n ?? 0);
}

/** Buffered updates per minute over the last versions, or undefined before two versions exist. */
export function updatesPerMinute(history: readonly RoundRecord[]): number | undefined {
  const recent = history.filter((r) => r.staleness).slice(-RATE_WINDOW_VERSIONS);
  if (recent.length < 2) return undefined;
  const first = recent[0]!;
  const last = recent.at(-1)!;
  const spanMs = last.startedAt + last.durationMs - first.startedAt;
  const updates = recent.reduce((sum, r) => sum + r.staleness!.counts.reduce((a, b) => a + b, 0), 0);
  return spanMs > 0 ? (updates * 60_000) / spanMs : undefined;
}

export function renderAsyncPanel(status: FederationStatus): void {
  const section = $('async-section');
  const settings = status.settings.async;
  section.hidden = status.settings.mode !== 'async' || settings === undefined;
  if (section.hidden || !settings) return;
  charts ??= makeCharts();
  const versions = status.history.filter((r) => r.outcome === 'aggregated');
  const origin = status.history[0]?.startedAt ?? 0;
  charts.versions.data.datasets[0]!.data = [
    { x: 0, y: 0 },
    ...versions.map((r) => ({ x: (r.startedAt + r.durationMs - origin) / 1000, y: r.modelVersion })),
  ];
  charts.versions.update();
  const histogram = stalenessHistogram(status.history);
  charts.staleness.data.labels = histogram.map((_, s) => String(s));
  charts.staleness.data.datasets[0]!.data = histogram;
  charts.staleness.update();
  const training = status.participants.filter((p) => p.connected && (p.state === 'training' || p.state === 'selected')).length;
  $('async-training').textContent = `${training} of at most ${settings.concurrency}`;
  const rate = updatesPerMinute(status.history);
  $('async-rate').textContent = rate === undefined ? '–' : rate.toFixed(1);
  $('async-settings').textContent =
    `K = ${settings.bufferSize} updates per version, staleness at most ${settings.maxStaleness}, weight (1 + s)^-${settings.stalenessExponent}`;
}
