import {
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from 'chart.js';
import { io, type Socket } from 'socket.io-client';
import type { AdminClientToServerEvents, AdminServerToClientEvents, FederationStatus, SecAggRoundStats } from '../../core/protocol/status.ts';
import { takeSecretParam } from '../secret-param.ts';

/** The live dashboard: the coordinator pushes its status over the /admin namespace; nothing polls. */

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, Legend, Tooltip);

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
  ].filter(Boolean).join(', ');
  const text = `n ${s.participants}, k ${k}, t ${s.threshold}: ${steps}${extra ? `; ${extra}` : ''}`;
  cell(row, text, {
    class: s.aborted ? 'secagg aborted' : 'secagg',
    title: `keys advertised ${s.advertised}, shares sent ${s.shared}, masked inputs ${s.masked}, unmasking answered ${s.unmasked}` + (s.aborted ? `; aborted: ${s.aborted}` : ''),
    'data-secagg': `${s.advertised} ${s.shared} ${s.masked} ${s.unmasked}`,
    'data-recovered': String(s.dropoutsRecovered),
    'data-excluded': String(s.excluded),
    ...(s.aborted ? { 'data-aborted': s.aborted } : {}),
  });
}

function render(status: FederationStatus): void {
  $('task').textContent = `${status.task.name} (${status.task.architecture}, ${status.task.paramCount.toLocaleString()} parameters)`;
  $('strategy').textContent = status.strategy;
  $('round').textContent = String(status.round);
  const phase = $('phase');
  phase.textContent = status.phase;
  phase.dataset.phase = status.phase;
  const connected = status.participants.filter((p) => p.connected);
  $('connected').textContent = String(connected.length);
  $('waiting').textContent = status.waitingFor ? `waiting for ${status.waitingFor}` : `${status.participants.length} seen since start`;
  const aggregated = status.history.filter((r) => r.metrics);
  const last = aggregated.at(-1)?.metrics;
  $('accuracy').textContent = percent(last?.accuracy);
  $('loss').textContent = last ? `loss ${last.loss.toFixed(4)}` : '';
  $('version').textContent = String(status.modelVersion);
  $('done').textContent = status.done ? `done: ${status.doneReason}` : '';

  const privacy = status.privacy;
  $('epsilon').textContent = privacy ? privacy.epsilon.toFixed(3) : '–';
  $('privacy').textContent = privacy
    ? `${privacy.level}-level DP, ${privacy.placement} noise, δ = ${privacy.delta}, z = ${privacy.noiseMultiplier}, q = ${privacy.sampleRate}, ${privacy.rounds} rounds`
    : 'no differential privacy';
  const withPrivacy = status.history.filter((r) => r.privacy);
  $('epsilon-section').hidden = withPrivacy.length === 0;
  epsilonChart.data.labels = withPrivacy.map((r) => String(r.round));
  epsilonChart.data.datasets[0]!.data = withPrivacy.map((r) => r.privacy!.epsilon);
  epsilonChart.update();

  const participants = ($('participants') as HTMLTableElement).tBodies[0]!;
  participants.replaceChildren();
  for (const p of status.participants) {
    const row = participants.insertRow();
    row.dataset.participant = p.id;
    row.dataset.connected = String(p.connected);
    cell(row, p.id.slice(0, 8), { title: p.id, class: 'mono' });
    cell(row, p.backend + (p.adapter ? ` · ${p.adapter}` : ''));
    cell(row, p.numExamples.toLocaleString());
    const state = !p.connected ? 'disconnected' : p.state === 'training' && p.progress !== undefined ? `training ${Math.round(p.progress * 100)}%` : p.state;
    cell(row, state, { 'data-state': p.connected ? p.state : 'disconnected' });
    cell(row, String(p.roundsContributed));
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
    cell(row, String(r.rejected));
    cell(row, String(r.declined));
    cell(row, `${bytes(r.bytesIn)} / ${bytes(r.bytesOut)}`);
    cell(row, `${(r.durationMs / 1000).toFixed(1)} s`);
    cell(row, r.privacy ? r.privacy.epsilon.toFixed(3) : '–');
    if (withSecAgg) secAggCell(row, r.secagg);
  }
  const rejected = Object.entries(status.rejections);
  $('rejections').textContent = rejected.length ? `Rejected requests: ${rejected.map(([code, n]) => `${code} × ${n}`).join(', ')}` : '';

  chart.data.labels = aggregated.map((r) => String(r.round));
  chart.data.datasets[0]!.data = aggregated.map((r) => r.metrics!.accuracy);
  chart.data.datasets[1]!.data = aggregated.map((r) => r.metrics!.loss);
  chart.update();
}

// The admin token (`?admin-token=`), needed when the coordinator runs with --admin-token; removed from the address bar.
const adminToken = takeSecretParam('admin-token');
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
  connection.textContent = code ? `refused: ${error.message}${code === 'UNAUTHORIZED' ? ' (open the dashboard with ?admin-token=…)' : ''}` : 'cannot reach the coordinator, retrying…';
  connection.dataset.state = code ? 'refused' : 'disconnected';
});
socket.on('status', render);
