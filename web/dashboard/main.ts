import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from 'chart.js';
import { io, type Socket } from 'socket.io-client';
import type { Ack } from '../../core/protocol/errors.ts';
import type {
  AdminClientToServerEvents,
  AdminServerToClientEvents,
  ControlAccepted,
  ControlAction,
  FederationStatus,
  RoundRecord,
  RoundSettings,
  SecAggRoundStats,
  SettingsChange,
} from '../../core/protocol/status.ts';
import { takeSecretParam } from '../secret-param.ts';
import { renderCluster } from './cluster-panel.ts';
import { renderAsyncPanel } from './async-panel.ts';
import { accountantText, noiseText } from './privacy-text.ts';

/** The live dashboard: the coordinator pushes its status over the /admin namespace; nothing polls. */

Chart.register(LineController, LineElement, PointElement, BarController, BarElement, Filler, LinearScale, CategoryScale, Legend, Tooltip);

const $ = (id: string) => document.getElementById(id)!;
const percent = (x: number | undefined) => (x === undefined ? '–' : `${(x * 100).toFixed(2)}%`);
const bytes = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`);

const chart = new Chart<'line', number[], string>($('metrics-chart') as HTMLCanvasElement, {
  type: 'line',
  data: {
    labels: [],
    datasets: [
      { label: 'Test accuracy', data: [], yAxisID: 'accuracy', borderColor: '#1b7f5b', backgroundColor: '#1b7f5b', tension: 0.2 },
      { label: 'Test loss', data: [], yAxisID: 'loss', borderColor: '#b3541e', backgroundColor: '#b3541e', tension: 0.2 },
    ],
  },
  options: {
    animation: false,
    maintainAspectRatio: false,
    scales: {
      accuracy: { type: 'linear', position: 'left', min: 0, max: 1, title: { display: true, text: 'accuracy' } },
      loss: { type: 'linear', position: 'right', min: 0, grid: { drawOnChartArea: false }, title: { display: true, text: 'loss' } },
      x: { title: { display: true, text: 'round' } },
    },
  },
});

const epsilonChart = new Chart<'line', number[], string>($('epsilon-chart') as HTMLCanvasElement, {
  type: 'line',
  data: { labels: [], datasets: [{ label: 'ε', data: [], borderColor: '#6b3fa0', backgroundColor: '#6b3fa0', tension: 0.2 }] },
  options: {
    animation: false,
    maintainAspectRatio: false,
    scales: { y: { min: 0, title: { display: true, text: 'ε' } }, x: { title: { display: true, text: 'round' } } },
  },
});

const normsChart = new Chart<'line', (number | null)[], string>($('norms-chart') as HTMLCanvasElement, {
  type: 'line',
  data: {
    labels: [],
    datasets: [
      { label: 'max', data: [], yAxisID: 'norm', borderColor: '#9fb3c8', backgroundColor: '#9fb3c8', borderDash: [4, 3], pointRadius: 2 },
      {
        label: '75th percentile',
        data: [],
        yAxisID: 'norm',
        borderColor: '#5b84b1',
        backgroundColor: 'rgba(91, 132, 177, 0.25)',
        fill: '+2',
        pointRadius: 2,
      },
      { label: 'median', data: [], yAxisID: 'norm', borderColor: '#1f5fbf', backgroundColor: '#1f5fbf', borderWidth: 3, pointRadius: 3 },
      { label: '25th percentile', data: [], yAxisID: 'norm', borderColor: '#5b84b1', backgroundColor: '#5b84b1', pointRadius: 2 },
      { label: 'min', data: [], yAxisID: 'norm', borderColor: '#9fb3c8', backgroundColor: '#9fb3c8', borderDash: [4, 3], pointRadius: 2 },
      {
        label: 'clipped fraction',
        data: [],
        yAxisID: 'fraction',
        borderColor: '#a4161a',
        backgroundColor: '#a4161a',
        pointStyle: 'rectRot',
        pointRadius: 4,
      },
    ],
  },
  options: {
    animation: false,
    maintainAspectRatio: false,
    scales: {
      norm: { type: 'linear', position: 'left', min: 0, title: { display: true, text: 'update L2 norm' } },
      fraction: {
        type: 'linear',
        position: 'right',
        min: 0,
        max: 1,
        grid: { drawOnChartArea: false },
        title: { display: true, text: 'clipped fraction' },
      },
      x: { title: { display: true, text: 'round' } },
    },
  },
});

const bytesChart = new Chart<'bar', number[], string>($('bytes-chart') as HTMLCanvasElement, {
  type: 'bar',
  data: {
    labels: [],
    datasets: [
      { label: 'in (updates), MB', data: [], backgroundColor: '#1b7f5b' },
      { label: 'out (models), MB', data: [], backgroundColor: '#8aa9d6' },
    ],
  },
  options: {
    animation: false,
    maintainAspectRatio: false,
    scales: { y: { min: 0, title: { display: true, text: 'MB' } }, x: { title: { display: true, text: 'round' } } },
  },
});

function cell(row: HTMLTableRowElement, text: string, attributes: Record<string, string> = {}): void {
  const td = row.insertCell();
  td.textContent = text;
  for (const [k, v] of Object.entries(attributes)) td.setAttribute(k, v);
}

/** One compact cell: n/k/t, participants through each step, drop-outs recovered, exclusions, abort. */
function secAggCell(row: HTMLTableRowElement, s: SecAggRoundStats | undefined): void {
  if (!s) {
    cell(row, '–');
    return;
  }
  const k = s.neighbours === 'all' ? 'all' : String(s.neighbours);
  const steps = `${s.advertised} → ${s.shared} → ${s.masked} → ${s.unmasked}`;
  const extra = [
    s.dropoutsRecovered ? `${s.dropoutsRecovered} drop-out${s.dropoutsRecovered === 1 ? '' : 's'} recovered` : '',
    s.excluded ? `${s.excluded} excluded` : '',
    s.aborted ? `aborted: ${s.aborted}` : '',
  ]
    .filter(Boolean)
    .join(', ');
  const text = `n ${s.participants}, k ${k}, t ${s.threshold}: ${steps}${extra ? `; ${extra}` : ''}`;
  cell(row, text, {
    class: s.aborted ? 'secagg aborted' : 'secagg',
    title: `keys advertised ${s.advertised}, shares sent ${s.shared}, masked inputs ${s.masked}, unmasking answered ${s.unmasked}${s.aborted ? `; aborted: ${s.aborted}` : ''}`,
    'data-secagg': `${s.advertised} ${s.shared} ${s.masked} ${s.unmasked}`,
    'data-recovered': String(s.dropoutsRecovered),
    'data-excluded': String(s.excluded),
    ...(s.aborted ? { 'data-aborted': s.aborted } : {}),
  });
}

function render(status: FederationStatus): void {
  renderAsyncPanel(status);
  $('task').textContent = `${status.task.name} (${status.task.architecture}, ${status.task.paramCount.toLocaleString()} parameters)`;
  $('strategy').textContent = status.strategy;
  $('round').textContent = String(status.round);
  const phase = $('phase');
  phase.textContent = status.phase;
  phase.dataset.phase = status.phase;
  // Large federations list only some participants (connected first); the totals count them all.
  const totals = status.participantTotals;
  $('connected').textContent = String(totals?.connected ?? status.participants.filter((p) => p.connected).length);
  const shown = totals && totals.listed < totals.known ? ` (${totals.listed} listed below)` : '';
  $('waiting').textContent = status.waitingFor
    ? `waiting for ${status.waitingFor}`
    : `${totals?.known ?? status.participants.length} known${shown}`;
  const aggregated = status.history.filter((r) => r.metrics);
  const last = aggregated.at(-1)?.metrics;
  $('accuracy').textContent = percent(last?.accuracy);
  $('loss').textContent = last ? `last: round ${aggregated.at(-1)!.round}, loss ${last.loss.toFixed(4)}` : '';
  const best = status.best;
  $('best').textContent = best
    ? `best: ${percent(best.metrics.accuracy)} in round ${best.round} (loss ${best.metrics.loss.toFixed(4)}; ${best.roundsSince} round${best.roundsSince === 1 ? '' : 's'} since${status.settings.earlyStoppingPatience ? `, patience ${status.settings.earlyStoppingPatience}` : ''})`
    : '';
  ($('download-best-json') as HTMLButtonElement).disabled = !best;
  ($('download-best-weights') as HTMLButtonElement).disabled = !best;
  // Saving failed: the federation is paused until the folder is writable and the operator resumes.
  const failure = status.storageFailure;
  const banner = $('storage-failure');
  banner.hidden = !failure;
  banner.textContent = failure
    ? `Saving ${failure.what} failed (${failure.code ?? 'error'} at ${failure.path ?? 'an unknown path'}: ${failure.message}). ` +
      (status.done
        ? 'The federation has finished; the file was not written.'
        : 'Nothing unsaved is shown. Make the folder writable, then press Resume.')
    : '';
  renderCluster(status.cluster);
  $('version').textContent = String(status.modelVersion);
  $('done').textContent = status.done ? `done: ${status.doneReason}` : '';

  const privacy = status.privacy;
  $('epsilon').textContent = privacy ? privacy.epsilon.toFixed(3) : '–';
  $('privacy').textContent = privacy
    ? `${privacy.level}-level DP, ${noiseText(privacy)}, δ = ${privacy.delta}, z = ${privacy.noiseMultiplier}, q = ${privacy.sampleRate}, ${privacy.rounds} rounds; ${accountantText(privacy)}`
    : status.settings.fit.sampleDp
      ? `sample-level DP-SGD: each participant's ledger reports its ε (${status.settings.fit.sampleDp.accountant ?? 'auto'} accountant; auto: the smaller of PLD and RDP)`
      : 'no differential privacy';
  $('epsilon').dataset.accountant = privacy?.accountant ?? '';
  const withPrivacy = status.history.filter((r) => r.privacy);
  $('epsilon-section').hidden = withPrivacy.length === 0;
  epsilonChart.data.labels = withPrivacy.map((r) => String(r.round));
  epsilonChart.data.datasets[0]!.data = withPrivacy.map((r) => r.privacy!.epsilon);
  epsilonChart.update();

  const participants = ($('participants') as HTMLTableElement).tBodies[0]!;
  participants.replaceChildren();
  // On a cluster every node lists every node's participants: the Node column says where each one is connected.
  const onCluster = status.cluster !== undefined;
  for (const th of document.querySelectorAll<HTMLElement>('#participants .node-col')) th.hidden = !onCluster;
  for (const p of status.participants) {
    const row = participants.insertRow();
    row.dataset.participant = p.id;
    row.dataset.connected = String(p.connected);
    cell(row, p.id.slice(0, 8), { title: p.id, class: 'mono' });
    if (onCluster) {
      const here = p.node === status.cluster?.self;
      cell(row, p.node === undefined ? '–' : `${p.node}${here ? ' (this node)' : ''}`, { 'data-node': p.node ?? '', class: 'mono' });
    }
    cell(
      row,
      p.backend +
        (p.threads !== undefined ? ` · ${p.threads} thread${p.threads === 1 ? '' : 's'}` : '') +
        (p.adapter ? ` · ${p.adapter}` : ''),
    );
    cell(row, p.platform ?? '–', p.platform ? { title: p.platform, class: 'device' } : {});
    cell(row, p.numExamples.toLocaleString());
    const state = !p.connected
      ? 'disconnected'
      : p.state === 'training' && p.progress !== undefined
        ? `training ${Math.round(p.progress * 100)}%`
        : p.state;
    cell(row, state, { 'data-state': p.connected ? p.state : 'disconnected' });
    cell(row, String(p.roundsContributed));
    cell(
      row,
      p.lastUpdateNorm === undefined ? (status.updateNormsShown ? '–' : 'withheld') : p.lastUpdateNorm.toPrecision(4),
      status.updateNormsShown ? {} : { title: status.updateNormsWithheld ?? '' },
    );
    cell(row, p.lastLatencyMs === undefined ? '–' : `${(p.lastLatencyMs / 1000).toFixed(1)} s`);
    cell(row, p.epsilon === undefined ? '–' : p.epsilon.toFixed(3), p.declined ? { title: p.declined } : {});
  }

  const withSecAgg = status.history.some((r) => r.secagg);
  for (const th of document.querySelectorAll<HTMLElement>('#rounds .secagg-col')) th.hidden = !withSecAgg;
  const rounds = ($('rounds') as HTMLTableElement).tBodies[0]!;
  rounds.replaceChildren();
  for (const r of [...status.history].reverse()) {
    const row = rounds.insertRow();
    row.dataset.round = String(r.round);
    cell(row, String(r.round));
    cell(row, r.outcome, r.reason ? { title: r.reason } : {});
    cell(row, percent(r.metrics?.accuracy));
    cell(row, r.metrics ? r.metrics.loss.toFixed(4) : '–');
    cell(row, `${r.received} / ${r.selected}`);
    cell(row, String(r.dropped));
    const reasons = Object.entries(r.rejectionReasons ?? {})
      .map(([code, n]) => `${code} × ${n}`)
      .join(', ');
    cell(row, reasons ? `${r.rejected} (${reasons})` : String(r.rejected), reasons ? { 'data-reasons': reasons } : {});
    cell(row, String(r.declined));
    cell(row, `${bytes(r.bytesIn)} / ${bytes(r.bytesOut)}${encodingText(r)}`, r.encoding ? { 'data-encoding': r.encoding.update } : {});
    cell(row, `${(r.durationMs / 1000).toFixed(1)} s`);
    cell(row, r.privacy ? r.privacy.epsilon.toFixed(3) : '–');
    if (withSecAgg) secAggCell(row, r.secagg);
  }
  const rejected = Object.entries(status.rejections);
  $('rejections').textContent = rejected.length ? `Rejected requests: ${rejected.map(([code, n]) => `${code} × ${n}`).join(', ')}` : '';
  // Rounds whose decoded secure sum was out of the range honest inputs span: aborted, model kept (docs/secagg-input-validation.md).
  const refusedSums = status.secureSumRejections;
  $('secure-sum-rejections').hidden = refusedSums === undefined;
  $('secure-sum-rejections').textContent =
    refusedSums === undefined ? '' : `Secure sums refused (out of range, round aborted, model kept): ${refusedSums}`;

  chart.data.labels = aggregated.map((r) => String(r.round));
  chart.data.datasets[0]!.data = aggregated.map((r) => r.metrics!.accuracy);
  chart.data.datasets[1]!.data = aggregated.map((r) => r.metrics!.loss);
  chart.update();

  renderNorms(status);
  bytesChart.data.labels = status.history.map((r) => String(r.round));
  bytesChart.data.datasets[0]!.data = status.history.map((r) => r.bytesIn / 1e6);
  bytesChart.data.datasets[1]!.data = status.history.map((r) => r.bytesOut / 1e6);
  // Bytes by encoding: the labels name the encodings of the latest round (the encoding is fixed for a run).
  const latest = status.history.at(-1)?.encoding;
  bytesChart.data.datasets[0]!.label = `in (updates${latest ? `, ${latest.update}` : ''}), MB`;
  bytesChart.data.datasets[1]!.label = `out (models${latest ? `, ${latest.model}` : ''}), MB`;
  bytesChart.update();
  renderTimeline(status.history);
  renderControls(status);
}

/** The round's encodings and its traffic as float32 would have been, when it travelled compressed. */
function encodingText(r: RoundRecord): string {
  const e = r.encoding;
  if (!e) return '';
  return ` (updates ${e.update}, model ${e.model}; as float32: ${bytes(e.bytesInFloat32)} / ${bytes(e.bytesOutFloat32)})`;
}

function renderNorms(status: FederationStatus): void {
  const note = $('norms-note');
  const box = $('norms-chart-box');
  if (!status.updateNormsShown) {
    // Privacy: the coordinator never sends individual norms in this configuration.
    note.hidden = false;
    note.textContent = `Withheld: ${status.updateNormsWithheld ?? 'individual update norms are not shown in this configuration'}.`;
    box.hidden = true;
    return;
  }
  const rounds = status.history.filter((r) => r.updateNorms);
  note.hidden = rounds.length > 0;
  note.textContent = rounds.length > 0 ? '' : 'No updates yet.';
  box.hidden = rounds.length === 0;
  normsChart.data.labels = rounds.map((r) => String(r.round));
  const pick = (f: (n: NonNullable<RoundRecord['updateNorms']>) => number | undefined) => rounds.map((r) => f(r.updateNorms!) ?? null);
  const sets = normsChart.data.datasets;
  sets[0]!.data = pick((n) => n.max);
  sets[1]!.data = pick((n) => n.p75);
  sets[2]!.data = pick((n) => n.median);
  sets[3]!.data = pick((n) => n.p25);
  sets[4]!.data = pick((n) => n.min);
  sets[5]!.data = pick((n) => n.clippedFraction);
  sets[5]!.hidden = rounds.every((r) => r.updateNorms!.clippedFraction === undefined);
  normsChart.update();
}

/** Rounds shown in the timeline, newest first. */
const TIMELINE_ROUNDS = 5;

function renderTimeline(history: readonly RoundRecord[]): void {
  const container = $('timeline');
  const shown = history
    .filter((r) => r.participants && r.participants.length > 0)
    .slice(-TIMELINE_ROUNDS)
    .reverse();
  if (shown.length === 0) {
    container.replaceChildren(Object.assign(document.createElement('p'), { className: 'muted', textContent: 'No rounds yet.' }));
    return;
  }
  const blocks = shown.map((r) => {
    const block = document.createElement('section');
    block.className = 'timeline-round';
    block.dataset.round = String(r.round);
    const heading = document.createElement('h3');
    heading.textContent = `Round ${r.round} · ${r.outcome} · ${(r.durationMs / 1000).toFixed(1)} s`;
    block.append(heading);
    const people = r.participants!;
    // Relative to the round's length, so the slowest participant's bar is the longest.
    const scale = Math.max(r.durationMs, ...people.map((p) => p.durationMs), 1);
    // The straggler: the slowest participant that answered, or anyone dropped at the deadline.
    const answered = people.filter((p) => p.outcome === 'received');
    const slowest = answered.length > 1 ? answered.reduce((a, b) => (b.durationMs > a.durationMs ? b : a)) : undefined;
    const list = document.createElement('ol');
    list.className = 'timeline-bars';
    for (const p of [...people].sort((a, b) => a.durationMs - b.durationMs)) {
      const item = document.createElement('li');
      item.dataset.participant = p.id;
      item.dataset.outcome = p.outcome;
      const straggler = p === slowest || (p.outcome === 'dropped' && p.reason === 'missed the deadline');
      if (straggler) item.dataset.straggler = 'true';
      const label = document.createElement('span');
      label.className = 'timeline-label';
      const norm = p.updateNorm === undefined ? '' : ` · norm ${p.updateNorm.toPrecision(3)}`;
      label.textContent = `${p.id.slice(0, 8)} · ${(p.durationMs / 1000).toFixed(1)} s · ${p.outcome}${norm}${straggler ? ' · straggler' : ''}`;
      label.title = p.reason ? `${p.id}: ${p.reason}` : p.id;
      const track = document.createElement('span');
      track.className = 'timeline-track';
      track.setAttribute('aria-hidden', 'true');
      const bar = document.createElement('span');
      bar.className = 'timeline-bar';
      bar.style.width = `${Math.max(1, (100 * p.durationMs) / scale).toFixed(1)}%`;
      track.append(bar);
      item.append(label, track);
      if (p.reason) {
        const reason = document.createElement('span');
        reason.className = 'timeline-reason muted';
        reason.textContent = p.reason;
        item.append(reason);
      }
      list.append(item);
    }
    block.append(list);
    return block;
  });
  container.replaceChildren(...blocks);
}

// ---------------------------------------------------------------- controls, settings and downloads

const controlButtons: Record<ControlAction, HTMLButtonElement> = {
  start: $('control-start') as HTMLButtonElement,
  pause: $('control-pause') as HTMLButtonElement,
  resume: $('control-resume') as HTMLButtonElement,
  stop: $('control-stop') as HTMLButtonElement,
};
const message = $('control-message');
/** A control request is on its way: its buttons stay disabled until the answer. */
let pending = false;
let lastStatus: FederationStatus | undefined;

function say(text: string, kind: 'ok' | 'error' | 'info'): void {
  message.textContent = text;
  message.dataset.kind = kind;
}

function renderControls(status: FederationStatus): void {
  lastStatus = status;
  const state = $('control-state');
  state.textContent = status.control;
  state.dataset.control = status.control;
  const allowed: Record<ControlAction, boolean> = {
    start: status.control === 'awaiting-start',
    pause: status.control === 'running',
    resume: status.control === 'paused',
    stop: status.control !== 'stopped',
  };
  for (const action of Object.keys(controlButtons) as ControlAction[]) controlButtons[action].disabled = pending || !allowed[action];
  fillSettings(status);
}

function ackText<T>(result: Ack<T>, success: (value: T) => string): [string, 'ok' | 'error'] {
  return result.ok ? [success(result.value), 'ok'] : [`Refused (${result.error.code}): ${result.error.message}`, 'error'];
}

/** Waits this long for an acknowledgement; a stop waits for the open round to close. */
const ACK_TIMEOUT_MS = 10_000;
const STOP_ACK_TIMEOUT_MS = 5 * 60_000;

for (const action of Object.keys(controlButtons) as ControlAction[]) {
  controlButtons[action].addEventListener('click', async () => {
    pending = true;
    if (lastStatus) renderControls(lastStatus);
    say(action === 'stop' ? 'Stopping: the open round closes first…' : `Sending ${action}…`, 'info');
    try {
      const result = await socket.timeout(action === 'stop' ? STOP_ACK_TIMEOUT_MS : ACK_TIMEOUT_MS).emitWithAck('control', { action });
      say(
        ...ackText(
          result,
          (v: ControlAccepted) => `${action}: done, the federation is now ${v.control}${v.doneReason ? ` (${v.doneReason})` : ''}.`,
        ),
      );
    } catch {
      say(`${action}: no answer from the coordinator (is it reachable?).`, 'error');
    } finally {
      pending = false;
      if (lastStatus) renderControls(lastStatus);
    }
  });
}

const form = $('settings-form') as HTMLFormElement;
interface SettingField {
  readonly input: HTMLInputElement;
  readonly label: string;
  readonly key: keyof SettingsChange;
  /** Form value to the wire (the deadline is typed in seconds, sent in ms) and back. */
  readonly toWire: (x: number) => number;
  readonly current: (s: FederationStatus) => number;
}
const field = (
  id: string,
  label: string,
  key: keyof SettingsChange,
  current: (s: FederationStatus) => number,
  toWire = (x: number) => x,
): SettingField => ({
  input: $(id) as HTMLInputElement,
  label,
  key,
  toWire,
  current,
});
const settingFields: readonly SettingField[] = [
  field('setting-clients-per-round', 'Clients per round', 'clientsPerRound', (s) => s.settings.clientsPerRound),
  field('setting-epochs', 'Local epochs', 'epochs', (s) => s.settings.fit.epochs),
  field('setting-batch-size', 'Batch size', 'batchSize', (s) => s.settings.fit.batchSize),
  field('setting-learning-rate', 'Learning rate', 'learningRate', (s) => s.settings.fit.learningRate),
  field(
    'setting-round-timeout',
    'Round deadline',
    'roundTimeoutMs',
    (s) => s.settings.roundTimeoutMs / 1000,
    (x) => Math.round(x * 1000),
  ),
];
/** Fields the operator typed in since the form was last filled: status pushes leave them alone. */
const edited = new Set<HTMLInputElement>();
for (const f of settingFields) f.input.addEventListener('input', () => edited.add(f.input));

function fillSettings(status: FederationStatus): void {
  for (const f of settingFields) {
    if (!edited.has(f.input) && document.activeElement !== f.input) f.input.value = String(f.current(status));
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const status = lastStatus;
  if (!status) return say('Not connected yet.', 'error');
  const change: { -readonly [K in keyof SettingsChange]: number } = {};
  for (const f of settingFields) {
    const text = f.input.value.trim();
    const value = Number(text);
    if (text === '' || !Number.isFinite(value)) {
      f.input.focus();
      return say(`${f.label}: enter a number.`, 'error');
    }
    // Only what changed: a setting the configuration pins must not be "changed" to its own value.
    if (value !== f.current(status)) change[f.key] = f.toWire(value);
  }
  if (Object.keys(change).length === 0) return say('Nothing to change: the values are the current settings.', 'info');
  say('Sending the new settings…', 'info');
  try {
    const result = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('settings', change);
    if (result.ok) edited.clear();
    const [text, kind] = ackText(
      result,
      (s: RoundSettings) =>
        `Settings changed; from the next round: ${s.clientsPerRound} per round, ${s.fit.epochs} epoch(s), batch ${s.fit.batchSize}, learning rate ${s.fit.learningRate}, deadline ${s.roundTimeoutMs / 1000} s.`,
    );
    say(text, kind);
    if (result.ok) fillSettings({ ...status, settings: result.value });
  } catch {
    say('Settings: no answer from the coordinator.', 'error');
  }
});

/** The model.json version last downloaded: weights.bin is fetched for the same version, so the pair matches. */
let downloadedModelVersion: string | undefined;

async function download(button: HTMLButtonElement, path: string, filename: string): Promise<void> {
  button.disabled = true;
  say(`Preparing ${filename}…`, 'info');
  try {
    const headers: Record<string, string> = adminToken ? { authorization: `Bearer ${adminToken}` } : {};
    let url = path;
    if (filename === 'weights.bin' && downloadedModelVersion !== undefined) url += `?version=${encodeURIComponent(downloadedModelVersion)}`;
    let response = await fetch(url, { headers, cache: 'no-store' });
    let note = '';
    if (response.status === 404 && url !== path) {
      // That version was replaced meanwhile: take the current weights and say so.
      response = await fetch(path, { headers, cache: 'no-store' });
      note = ' (the model moved on since model.json was saved: download model.json again to match)';
    }
    if (!response.ok) {
      const body = (await response.json().catch(() => undefined)) as { error?: { message?: string } } | undefined;
      throw new Error(`HTTP ${response.status}${body?.error?.message ? `: ${body.error.message}` : ''}`);
    }
    const version = response.headers.get('x-model-version');
    if (filename === 'model.json' && version !== null) downloadedModelVersion = version;
    const blob = await response.blob();
    const href = URL.createObjectURL(blob);
    const link = Object.assign(document.createElement('a'), { href, download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60_000);
    say(`Saved ${filename}${version !== null ? ` (model version ${version})` : ''}${note}.`, 'ok');
  } catch (error) {
    say(`Could not download ${filename}: ${(error as Error).message}`, 'error');
  } finally {
    button.disabled = false;
  }
}

const downloads: [string, string, string][] = [
  ['download-model-json', '/api/model/model.json', 'model.json'],
  ['download-model-weights', '/api/model/weights.bin', 'weights.bin'],
  ['download-best-json', '/api/model/best/model.json', 'model.json'],
  ['download-best-weights', '/api/model/best/weights.bin', 'weights.bin'],
  ['download-report-json', '/api/report.json', 'report.json'],
  ['download-report-html', '/api/report.html', 'report.html'],
  ['download-history-csv', '/api/history.csv', 'history.csv'],
];
for (const [id, path, filename] of downloads) {
  const button = $(id) as HTMLButtonElement;
  button.addEventListener('click', () => void download(button, path, filename));
}

// The admin token (`?admin-token=`, or `?token=`), needed when the coordinator runs with --admin-token; removed from the address bar.
const adminToken = takeSecretParam('admin-token') ?? takeSecretParam('token');
const socket: Socket<AdminServerToClientEvents, AdminClientToServerEvents> = io('/admin', {
  transports: ['websocket'],
  auth: adminToken ? { token: adminToken } : {},
});
const connection = $('connection');
socket.on('connect', () => {
  connection.textContent = 'live';
  connection.dataset.state = 'live';
});
socket.on('disconnect', () => {
  connection.textContent = 'disconnected, reconnecting…';
  connection.dataset.state = 'disconnected';
});
socket.on('connect_error', (error) => {
  // A refused handshake (UNAUTHORIZED: no or a wrong admin token) is final; anything else is retried.
  const code = (error as Error & { data?: { code?: string } }).data?.code;
  connection.textContent = code
    ? `refused: ${error.message}${code === 'UNAUTHORIZED' ? ' (open the dashboard with ?admin-token=…)' : ''}`
    : 'cannot reach the coordinator, retrying…';
  connection.dataset.state = code ? 'refused' : 'disconnected';
});
socket.on('status', render);
