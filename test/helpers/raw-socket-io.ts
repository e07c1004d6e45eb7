import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as tcpConnect, type Socket as TcpSocket } from 'node:net';

/**
 * A socket.io client by hand over a raw TCP WebSocket, for what the real
 * client will not do: go silent without closing (a half-open connection)
 * and send undecodable packets.
 */
export class RawClient {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly frames: string[] = [];
  private waiter: (() => void) | undefined;
  private onServerClose!: () => void;
  /** Resolves when the server closes the WebSocket (a close frame, or the TCP connection ends). */
  readonly closedByServer = new Promise<void>((resolve) => (this.onServerClose = resolve));

  private constructor(readonly tcp: TcpSocket) {
    tcp.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.parse();
      this.waiter?.();
    });
    tcp.on('error', () => {});
    tcp.on('close', () => this.onServerClose());
  }

  static async open(port: number, token: string): Promise<RawClient> {
    const tcp = tcpConnect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => tcp.once('connect', () => resolve()).once('error', reject));
    const key = randomBytes(16).toString('base64');
    tcp.write(
      `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const head = await new Promise<Buffer>((resolve) => {
      let data = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        const end = data.indexOf('\r\n\r\n');
        if (end >= 0) {
          tcp.off('data', onData);
          resolve(data);
        }
      };
      tcp.on('data', onData);
    });
    const end = head.indexOf('\r\n\r\n');
    assert.match(head.subarray(0, end).toString(), /^HTTP\/1\.1 101/);
    const raw = new RawClient(tcp);
    raw.buffer = head.subarray(end + 4);
    raw.parse();
    raw.send(`40${JSON.stringify({ token })}`);
    await raw.next((f) => f.startsWith('40'));
    return raw;
  }

  /** Sends one text frame (masked, as a client must). */
  send(text: string): void {
    this.sendFrame(0x81, Buffer.from(text));
  }

  /** Sends one binary frame: a socket.io binary attachment. */
  sendBinary(bytes: Uint8Array): void {
    this.sendFrame(0x82, Buffer.from(bytes));
  }

  private sendFrame(first: number, payload: Buffer): void {
    const mask = randomBytes(4);
    if (payload.length >= 65_536) throw new Error('RawClient sends frames under 64 KiB only');
    const header =
      payload.length < 126
        ? Buffer.from([first, 0x80 | payload.length])
        : Buffer.from([first, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
    this.tcp.write(Buffer.concat([header, mask, masked]));
  }

  /** Waits for a text frame from the server that passes `match`. */
  async next(match: (frame: string) => boolean): Promise<string> {
    for (;;) {
      const index = this.frames.findIndex(match);
      if (index >= 0) return this.frames.splice(index, 1)[0]!;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  private parse(): void {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      let length = b[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (b.length < offset + length) return;
      const opcode = b[0]! & 0x0f;
      if (opcode === 1) this.frames.push(b.subarray(offset, offset + length).toString());
      if (opcode === 8) this.onServerClose();
      this.buffer = b.subarray(offset + length);
    }
  }
}
