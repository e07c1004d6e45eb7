import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { TrafficCounter } from '../../coordinator/cluster/traffic.ts';
import { CoordinatorMetrics } from '../../coordinator/metrics/coordinator-metrics.ts';
import type { FederationStatus } from '../../core/protocol/status.ts';

/** The value of one unlabelled sample line of a Prometheus text exposition. */
function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} is exposed`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('TrafficCounter', () => {
  it('is one counter per server: /metrics and the cluster read the same bytes through one connection listener', async () => {
    const server = createServer((_request, response) => response.end('x'.repeat(1000)));
    const before = server.listenerCount('connection');
    const status = { round: 0, modelVersion: 0, history: [], rejections: {}, participants: [] } as unknown as FederationStatus;
    const metrics = new CoordinatorMetrics({ status: () => status });
    metrics.countTransportBytes(server);
    const clusterCounter = TrafficCounter.of(server);
    assert.equal(TrafficCounter.of(server), clusterCounter);
    assert.equal(server.listenerCount('connection'), before + 1, 'one listener, not one per reader');

    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const body = await (await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } })).text();
      assert.equal(body.length, 1000);
      const text = (await metrics.render()).body;
      assert.ok(clusterCounter.bytesOut > 1000, 'the response body and headers are counted');
      assert.ok(clusterCounter.bytesIn > 0);
      assert.equal(sample(text, 'fl_transport_sent_bytes_total'), clusterCounter.bytesOut);
      assert.equal(sample(text, 'fl_transport_received_bytes_total'), clusterCounter.bytesIn);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("counts the request bytes of a connection that is a stream fed by --workers' primary, not a net.Socket (never NaN)", async () => {
    const server = createServer((_request, response) => response.end('ok'));
    const counter = TrafficCounter.of(server);
    const request = 'POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello';
    let answered!: () => void;
    const response = new Promise<void>((resolve) => (answered = resolve));
    // As @socket.io/sticky's worker-side stream for a request with a body: bytes pushed in, the response written out.
    const forwarded = new Duplex({
      read() {},
      write(_chunk, _encoding, callback) {
        callback();
        answered();
      },
    });
    server.emit('connection', forwarded);
    forwarded.push(request.slice(0, 40));
    forwarded.push(request.slice(40));
    await response;
    assert.equal(counter.bytesIn, request.length);
    forwarded.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(counter.bytesIn, request.length, 'kept once the connection closed');
    assert.equal(counter.bytesOut, 0, 'its response is not counted');
  });
});
