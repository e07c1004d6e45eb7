import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';

/**
 * The baseline: a bare socket.io server that acknowledges each update
 * without decoding, validating or aggregating it. Same transport settings as
 * the coordinator.
 */
const maxBytes = Number(process.argv[2] ?? 2_000_000);
const http = createServer();
const io = new Server(http, { maxHttpBufferSize: maxBytes, serveClient: false });
io.on('connection', (socket) => {
  socket.on('update', (message: { update?: Uint8Array }, ack: (result: { ok: boolean; bytes: number }) => void) => {
    ack({ ok: true, bytes: message.update?.byteLength ?? 0 });
  });
});
http.listen(0, '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${(http.address() as AddressInfo).port}`);
});

// The benchmark stops servers with SIGTERM; exiting through process.exit writes a --cpu-prof profile.
process.on('SIGTERM', () => process.exit(0));
