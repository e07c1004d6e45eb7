import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PrivacyReport } from '../../core/aggregation/strategy.ts';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import type { FederationStatus, RoundRecord } from '../../core/protocol/status.ts';
import { csvField, historyCsv } from '../../coordinator/report/history-csv.ts';
import { escapeHtml, renderReportHtml } from '../../coordinator/report/report-html.ts';
import {
  AUDIT_INTERPRETATION,
  buildRunReport,
  PARTICIPATION_WITHHELD,
  ROUND_PARTICIPATION_FIELDS,
  type ReportAudit,
} from '../../coordinator/report/run-report.ts';

const HOSTILE = `<script>alert("x")</script>, 'quoted'\nnext line`;

function privacy(epsilon: number, rounds: number): PrivacyReport {
  return {
    level: 'client',
    placement: 'central',
    epsilon,
    delta: 1e-5,
    optimalOrder: 8,
    rounds,
    noiseMultiplier: 1,
    sampleRate: 0.5,
    clipNorm: 1,
    conversion: 'improved',
  };
}

function record(round: number, extra: Partial<RoundRecord> = {}): RoundRecord {
  return {
    round,
    outcome: 'aggregated',
    modelVersion: round,
    metrics: { accuracy: 0.5 + round / 10, loss: 1 / round },
    selected: 3,
    received: 2,
    dropped: 1,
    rejected: 0,
    declined: 0,
    bytesIn: 1000 * round,
    bytesOut: 3000,
    startedAt: 1_700_000_000_000,
    durationMs: 1500,
    ...extra,
  };
}

const history: RoundRecord[] = [
  record(1, { privacy: privacy(0.5, 1) }),
  record(2, { outcome: 'skipped', metrics: undefined, modelVersion: 1, reason: HOSTILE, privacy: privacy(0.8, 2) }),
  record(3, { privacy: privacy(1.1, 3) }),
];

const status: FederationStatus = {
  task: { name: 'demo', architecture: 'mlp', paramCount: 10 },
  strategy: 'dp-fedavg',
  settings: {
    rounds: 3,
    minClients: 2,
    clientsPerRound: 3,
    minUpdates: 1,
    roundTimeoutMs: 60_000,
    fit: { epochs: 1, batchSize: 32, learningRate: 0.1 },
  },
  round: 3,
  phase: 'done',
  modelVersion: 2,
  done: true,
  doneReason: 'completed 3 rounds',
  control: 'stopped',
  updateNormsShown: false,
  participants: [],
  history,
  privacy: privacy(1.1, 3),
  rejections: {},
  startedAt: 1_700_000_000_000,
};

const task = {
  name: 'demo',
  description: HOSTILE,
  model: { architecture: 'mlp', inputShape: [4], numClasses: 3 },
  weightShapes: [],
  paramCount: 10,
  input: { kind: 'image', shape: [2, 2, 1] },
  classes: ['a', 'b', 'c'],
} as unknown as TaskSummary;

const audit: ReportAudit = {
  available: true,
  attack: 'loss-threshold',
  modelVersion: 2,
  membersSource: 'members',
  nonMembersSource: 'non-members',
  interpretation: AUDIT_INTERPRETATION,
  durationMs: 12,
  members: 100,
  nonMembers: 200,
  meanMemberLoss: 0.3,
  meanNonMemberLoss: 0.4,
  auc: 0.5312,
  advantage: 0.07,
};

const clientDp = {
  placement: 'central' as const,
  noiseMultiplier: 1,
  clip: { kind: 'fixed' as const, norm: 1 },
  sampleRate: 0.5,
  expectedClients: 3,
  delta: 1e-5,
};

/** The same run without any DP: participation is the operator's to share. */
const plainHistory: RoundRecord[] = history.map(({ privacy: _p, ...r }) => r);
const plainStatus: FederationStatus = {
  ...status,
  strategy: 'fedavg',
  privacy: undefined,
  history: plainHistory,
  participants: [{ id: 'a', connected: true, backend: 'wasm', numExamples: 10, state: 'idle', roundsContributed: 3 }],
};

describe('run report', () => {
  it('summarises the run: rounds, best and final accuracy, ε reached, the audit', () => {
    const report = buildRunReport({ status, task, clientDp, audit, now: new Date('2025-01-02T03:04:05Z') });
    assert.equal(report.generatedAt, '2025-01-02T03:04:05.000Z');
    assert.equal(report.final, true);
    assert.deepEqual(report.outcome.finalMetrics, { accuracy: 0.8, loss: 1 / 3 });
    assert.deepEqual(report.outcome.best, { round: 3, accuracy: 0.8, loss: 1 / 3, modelVersion: plainHistory[2]!.modelVersion });
    assert.equal(report.outcome.finalRound, 3);
    assert.equal(report.outcome.aggregated, 2);
    assert.equal(report.outcome.skipped, 1);
    assert.deepEqual(
      report.rounds.map((r) => [r.round, r.outcome, r.accuracy, r.epsilon]),
      [
        [1, 'aggregated', 0.6, 0.5],
        [2, 'skipped', undefined, 0.8],
        [3, 'aggregated', 0.8, 1.1],
      ],
    );
    assert.equal(report.privacy.kind, 'client-level');
    assert.match(report.privacy.statement, /ε = 1\.100, δ = 0\.00001/);
    assert.deepEqual(report.audit, audit);
  });

  it("gives each round's participation, and the participants seen, without client-level DP", () => {
    const report = buildRunReport({ status: plainStatus, task, audit, now: new Date() });
    assert.equal(report.participationWithheld, undefined);
    assert.equal(report.outcome.participantsSeen, 1);
    assert.deepEqual(report.rounds[1], {
      round: 2,
      outcome: 'skipped',
      reason: HOSTILE,
      selected: 3,
      received: 2,
      dropped: 1,
      rejected: 0,
      declined: 0,
      bytesIn: 2000,
      bytesOut: 3000,
      durationMs: 1500,
    });
    const html = renderReportHtml(report);
    assert.match(html, /<dt>Participants seen<\/dt><dd>1<\/dd>/);
    assert.match(html, /aria-label="Participants per round"/);
    assert.match(html, /<th scope="col">Selected<\/th>/);
  });

  it('under client-level DP leaves who and how many took part out of the JSON and the page, and says why', () => {
    const withParticipants: FederationStatus = { ...status, participants: plainStatus.participants };
    const report = buildRunReport({ status: withParticipants, task, clientDp, audit, now: new Date() });
    assert.equal(report.participationWithheld, PARTICIPATION_WITHHELD);
    assert.equal(report.outcome.participantsSeen, undefined);
    // Only what the models and the accountant give: no count, traffic, duration or reason (it quotes counts).
    for (const r of report.rounds)
      assert.deepEqual(
        Object.keys(r).sort(),
        r.accuracy === undefined ? ['epsilon', 'outcome', 'round'] : ['accuracy', 'epsilon', 'loss', 'outcome', 'round'],
      );
    const rounds = JSON.stringify(report.rounds);
    for (const field of ROUND_PARTICIPATION_FIELDS) assert.ok(!rounds.includes(`"${field}"`), field);
    assert.ok(!('participantsSeen' in report.outcome));
    assert.ok(!rounds.includes('quoted'), "the skipped round's reason is left out");

    const html = renderReportHtml(report);
    assert.ok(html.includes(escapeHtml(PARTICIPATION_WITHHELD)), 'the page says why');
    assert.doesNotMatch(html, /Participants seen|Participants per round|Selected|Received|Dropped|Duration|In \/ out/);
    assert.match(
      html,
      /<th scope="col">Round<\/th><th scope="col">Outcome<\/th><th scope="col">Accuracy<\/th><th scope="col">Loss<\/th><th scope="col">ε<\/th><\/tr>/,
    );
    assert.match(html, /each eligible participant selected at random with probability 0\.5/, 'DP-FedAvg ignores clients per round');
    // Without the options the accountant's report still makes it client-level: never "no DP", never the counts.
    const bare = buildRunReport({ status: withParticipants, task, audit, now: new Date() });
    assert.equal(bare.participationWithheld, PARTICIPATION_WITHHELD);
    assert.equal(bare.privacy.kind, 'client-level');
    assert.match(bare.privacy.statement, /ε = 1\.100/);
  });

  it("names the PLD accountant when it gave ε, with its lower bound and RDP's value for the same rounds", () => {
    const pldPrivacy: PrivacyReport = {
      ...privacy(1.1, 3),
      accountant: 'pld',
      accountantSetting: 'auto',
      pldEpsilon: 1.1,
      pldEpsilonLower: 1.0987,
      rdpEpsilon: 1.25,
    };
    const { statement } = buildRunReport({ status: { ...status, privacy: pldPrivacy }, task, clientDp, audit, now: new Date() }).privacy;
    assert.match(
      statement,
      /after 3 rounds \(noise multiplier 1 per round, sampling rate 0\.5, PLD accountant \(the tighter of PLD and RDP\), true ε at least 1\.099; RDP gives 1\.250\)\./,
    );
    assert.doesNotMatch(statement, /RDP accountant/);
  });

  it('states central client-level DP as what it covers: the released models, not what the trusted coordinator saw', () => {
    const { statement } = buildRunReport({ status, task, clientDp, audit, now: new Date() }).privacy;
    assert.match(
      statement,
      /central noise: the models released after each round, and what this report computes from them with the coordinator's own examples \(test accuracy and loss, the membership audit\), are \(ε = 1\.100, δ = 0\.00001\)-differentially private with respect to adding or removing one participant's whole dataset, after 3 rounds \(noise multiplier 1 per round, sampling rate 0\.5, RDP accountant, improved conversion\)\./,
    );
    assert.match(
      statement,
      /The coordinator is trusted: it saw each update, each example count and who took part, which this guarantee does not cover\./,
    );
    assert.match(statement, /only while who and how many took part stay with the operator, so this report leaves them out\./);
    assert.match(
      statement,
      /integer noise \(a rounded CSPRNG Gaussian\) is added exactly, so no floating-point representation reveals the input\.$/,
    );
    assert.doesNotMatch(statement, /each participant's whole dataset is protected/, 'no unqualified claim');
  });

  it("states distributed client-level DP as each participant's own noise, without sampling amplification", () => {
    const spent: PrivacyReport = { ...privacy(2.5, 3), placement: 'distributed', noiseMultiplier: 0.5, sampleRate: 1 };
    const report = buildRunReport({
      status: { ...status, privacy: spent },
      task,
      clientDp: { ...clientDp, placement: 'distributed' },
      audit,
      now: new Date(),
    });
    assert.equal(report.participationWithheld, PARTICIPATION_WITHHELD);
    assert.match(
      report.privacy.statement,
      /distributed noise: each participant clipped its update and added its share of the Gaussian noise before sending it\./,
    );
    assert.match(report.privacy.statement, /counts only a participant's own noise in every round, without sampling amplification/);
    assert.match(
      report.privacy.statement,
      /are \(ε = 2\.500, δ = 0\.00001\)-differentially private .* \(noise multiplier 0\.5 per round, sampling rate 1, .*; its example count is not covered\./,
    );
    assert.match(
      report.privacy.statement,
      /with respect to replacing one participant's clipped update by zero \(zero-out/,
      'the neighbour relation the per-participant accounting holds for',
    );
  });

  it('says that secure aggregation hid each update from the coordinator, and that it is still no DP guarantee', () => {
    const secureAggregation = { neighbours: 'all' as const, clipRange: 1, quantizationRange: 2 ** 22, stepTimeoutMs: 30_000 };
    const masked: FederationStatus = { ...plainStatus, settings: { ...plainStatus.settings, secureAggregation } };
    const none = buildRunReport({ status: masked, task, audit, now: new Date() }).privacy;
    assert.equal(none.kind, 'none');
    assert.match(
      none.statement,
      /^No differential privacy\. The updates were masked with secure aggregation, so the coordinator saw only each round's sum of them, never one participant's update/,
    );
    assert.match(none.statement, /Still, neither that sum nor the model carries a formal privacy guarantee\.$/);
    assert.doesNotMatch(
      buildRunReport({ status: plainStatus, task, audit, now: new Date() }).privacy.statement,
      /secure aggregation/,
      'not claimed when it is off',
    );
    // Distributed DP over secure aggregation says both.
    const spent: PrivacyReport = { ...privacy(2.5, 3), placement: 'distributed', noiseMultiplier: 0.5, sampleRate: 1 };
    const dp = buildRunReport({
      status: { ...masked, privacy: spent },
      task,
      clientDp: { ...clientDp, placement: 'distributed' },
      audit,
      now: new Date(),
    }).privacy;
    assert.match(dp.statement, /own noise in every round.*The updates were masked with secure aggregation/);
  });

  it('says why the audit is unavailable, and states sample-level DP without claiming an ε the coordinator does not know', () => {
    const sampleDp = { clipNorm: 1, noiseMultiplier: 1.1, expectedBatchSize: 32, delta: 1e-5 };
    const dpStatus: FederationStatus = {
      ...status,
      privacy: undefined,
      settings: { ...status.settings, fit: { ...status.settings.fit, sampleDp } },
      participants: [
        { id: 'a', connected: true, backend: 'wasm', numExamples: 10, state: 'idle', roundsContributed: 1, epsilon: 0.7 },
        { id: 'b', connected: true, backend: 'wasm', numExamples: 10, state: 'idle', roundsContributed: 1, epsilon: 1.9 },
      ],
    };
    const report = buildRunReport({ status: dpStatus, task, audit: { available: false, reason: 'no data' }, now: new Date() });
    assert.equal(report.privacy.kind, 'sample-level');
    assert.match(report.privacy.statement, /each participant accounts the ε of its own data; the largest any reported is ε = 1\.900/);
    const html = renderReportHtml(report);
    assert.match(html, /The membership-inference audit is unavailable: no data/);
  });

  it('renders a self-contained page: every string escaped, inline SVG charts, nothing external', () => {
    const html = renderReportHtml(buildRunReport({ status: plainStatus, task, audit, now: new Date() }));
    assert.doesNotMatch(html, /<script/i);
    assert.equal(html.split(escapeHtml(HOSTILE)).length - 1, 2, 'the hostile description and reason appear escaped');
    assert.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;, &#39;quoted&#39;'));
    assert.doesNotMatch(html, /\b(src|href)=/i);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
    // Accuracy, loss and participants (no DP: no ε).
    assert.equal((html.match(/<svg /g) ?? []).length, 3);
    assert.match(html, /AUC 0\.531/);
    // The accuracy chart has a point per aggregated round, none for the skipped one.
    const accuracy = html.slice(
      html.indexOf('aria-label="Test accuracy per round"'),
      html.indexOf('</svg>', html.indexOf('aria-label="Test accuracy per round"')),
    );
    assert.equal((accuracy.match(/<circle /g) ?? []).length, 2);
    // Under client-level DP: accuracy, loss and ε; no participants chart.
    const dpHtml = renderReportHtml(buildRunReport({ status, task, clientDp, audit, now: new Date() }));
    assert.deepEqual(
      [...dpHtml.matchAll(/<svg [^>]*aria-label="([^"]+)"/g)].map((m) => m[1]),
      ['Test accuracy per round', 'Test loss per round', 'Privacy spent: ε after each round'],
    );
  });
});

/** An async run: each version's record has the staleness of the updates it was made from. */
const asyncHistory: RoundRecord[] = [
  record(1, { staleness: { max: 0, mean: 0, counts: [3] } }),
  record(2, { staleness: { max: 2, mean: 0.6, counts: [3, 1, 1] } }),
];

describe('staleness in the report and the history (async mode)', () => {
  it("gives each version's staleness (max, mean, counts) in the JSON, the page and the CSV", () => {
    const report = buildRunReport({ status: { ...plainStatus, history: asyncHistory }, task, audit, now: new Date() });
    assert.deepEqual(report.rounds[1]?.staleness, { max: 2, mean: 0.6, counts: [3, 1, 1] });
    const html = renderReportHtml(report);
    assert.match(html, /<th scope="col">Staleness<\/th>/);
    assert.match(html, /<td>max 2, mean 0\.60; by s: 3 1 1<\/td>/);
    const records = historyCsv(asyncHistory).split('\r\n');
    assert.ok(records[0]!.endsWith(',epsilon,delta,staleness_max,staleness_mean,staleness_counts'), records[0]);
    assert.ok(records[2]!.endsWith(',2,0.6,3 1 1'), records[2]);
    // A sync run has no staleness columns (the header test below is unchanged).
    assert.doesNotMatch(renderReportHtml(buildRunReport({ status: plainStatus, task, audit, now: new Date() })), /Staleness/);
  });

  it('under client-level DP leaves staleness out, since its counts add up to how many updates a version took', () => {
    const report = buildRunReport({ status: { ...status, history: asyncHistory }, task, clientDp, audit, now: new Date() });
    assert.equal(report.rounds[1]?.staleness, undefined);
    assert.doesNotMatch(renderReportHtml(report), /Staleness/);
    assert.match(PARTICIPATION_WITHHELD, /staleness/);
    assert.equal(historyCsv(asyncHistory, { withholdParticipation: true }).split('\r\n')[0], 'round,outcome,accuracy,loss,epsilon,delta');
  });
});

describe('history CSV', () => {
  it('quotes fields per RFC 4180 and ends every record with CRLF', () => {
    assert.equal(csvField('plain'), 'plain');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('two\nlines'), '"two\nlines"');
    assert.equal(csvField(undefined), '');
    const csv = historyCsv(history);
    assert.ok(csv.endsWith('\r\n'));
    const records = csv.split('\r\n');
    assert.equal(
      records[0],
      'round,outcome,reason,accuracy,loss,selected,received,dropped,rejected,declined,bytes_in,bytes_out,duration_ms,epsilon,delta',
    );
    assert.equal(records[1], '1,aggregated,,0.6,1,3,2,1,0,0,1000,3000,1500,0.5,0.00001');
    assert.equal(records[2], `2,skipped,"<script>alert(""x"")</script>, 'quoted'\nnext line",,,3,2,1,0,0,2000,3000,1500,0.8,0.00001`);
    assert.equal(records.length, 5);
  });

  it('under client-level DP has no column that tells who or how many took part', () => {
    const csv = historyCsv(history, { withholdParticipation: true });
    const records = csv.split('\r\n');
    assert.equal(records[0], 'round,outcome,accuracy,loss,epsilon,delta');
    assert.equal(records[1], '1,aggregated,0.6,1,0.5,0.00001');
    assert.equal(records[2], '2,skipped,,,0.8,0.00001', 'no reason: it quotes counts');
    assert.equal(records.length, 5);
    assert.ok(!csv.includes('quoted'));
  });

  it('keeps a spreadsheet from reading a text cell as a formula; numbers stay numbers', () => {
    for (const start of ['=', '+', '-', '@']) assert.equal(csvField(`${start}HYPERLINK("x")`), `"'${start}HYPERLINK(""x"")"`, start);
    assert.equal(csvField('=1+2'), "'=1+2");
    assert.equal(csvField('@SUM(A1)'), "'@SUM(A1)");
    assert.equal(csvField('\t=1+2'), "'\t=1+2");
    assert.equal(csvField('\r=1+2'), `"'\r=1+2"`, 'a CR is still quoted');
    assert.equal(csvField('-1.5'), "'-1.5", 'text that looks like a number is still text');
    assert.equal(csvField(-1.5), '-1.5');
    assert.equal(csvField(-0.25e-7), '-2.5e-8');
    assert.equal(csvField('a=b'), 'a=b', 'only the first character matters');
    assert.equal(csvField(''), '');
    const csv = historyCsv([record(1, { outcome: 'skipped', metrics: undefined, reason: '=cmd|"/c calc"!A1' })]);
    assert.equal(csv.split('\r\n')[1], `1,skipped,"'=cmd|""/c calc""!A1",,,3,2,1,0,0,1000,3000,1500,,`);
  });
});
