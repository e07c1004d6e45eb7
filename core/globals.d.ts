// Web-standard globals that browsers, dedicated workers and Node >= 20 all
// provide. The core is compiled against this file instead of the DOM or Node
// typings, so code that would only run on one side fails to compile.

interface IsomorphicCrypto {
  getRandomValues<T extends ArrayBufferView>(array: T): T;
  readonly subtle: IsomorphicSubtleCrypto;
}

// The WebCrypto subset core/secagg calls (ECDH P-256, HKDF-SHA-256, AES-GCM,
// AES-CTR, SHA-256), narrowed from the DOM typings. Core code never names
// these types (the coordinator compiles core against Node's typings, where
// they do not exist); it derives key types from `typeof crypto.subtle`, so
// each call site is also checked against the real DOM and Node typings.

/** An opaque key handle; only WebCrypto makes them. */
interface IsomorphicCryptoKey {
  readonly type: 'public' | 'private' | 'secret';
  readonly extractable: boolean;
}

type IsomorphicBufferSource = ArrayBuffer | ArrayBufferView<ArrayBuffer>;
type IsomorphicKeyUsage = 'encrypt' | 'decrypt' | 'deriveBits';
type IsomorphicEcdhP256 = { name: 'ECDH'; namedCurve: 'P-256' };

/** The fields of an EC JSON Web Key (RFC 7518), base64url without padding. */
interface IsomorphicEcJsonWebKey {
  kty?: string;
  crv?: string;
  x?: string;
  y?: string;
  d?: string;
  ext?: boolean;
}

type IsomorphicAesGcmParams = { name: 'AES-GCM'; iv: IsomorphicBufferSource; additionalData?: IsomorphicBufferSource; tagLength?: 128 };
type IsomorphicAesCtrParams = { name: 'AES-CTR'; counter: IsomorphicBufferSource; length: number };
type IsomorphicHkdfParams = { name: 'HKDF'; hash: 'SHA-256'; salt: IsomorphicBufferSource; info: IsomorphicBufferSource };

interface IsomorphicSubtleCrypto {
  generateKey(
    algorithm: IsomorphicEcdhP256,
    extractable: boolean,
    keyUsages: readonly 'deriveBits'[],
  ): Promise<{ readonly publicKey: IsomorphicCryptoKey; readonly privateKey: IsomorphicCryptoKey }>;
  exportKey(format: 'raw', key: IsomorphicCryptoKey): Promise<ArrayBuffer>;
  exportKey(format: 'jwk', key: IsomorphicCryptoKey): Promise<IsomorphicEcJsonWebKey>;
  importKey(
    format: 'jwk',
    keyData: IsomorphicEcJsonWebKey,
    algorithm: IsomorphicEcdhP256,
    extractable: boolean,
    keyUsages: IsomorphicKeyUsage[],
  ): Promise<IsomorphicCryptoKey>;
  importKey(
    format: 'raw',
    keyData: IsomorphicBufferSource,
    algorithm: IsomorphicEcdhP256 | { name: 'AES-GCM' | 'AES-CTR' | 'HKDF' },
    extractable: boolean,
    keyUsages: IsomorphicKeyUsage[],
  ): Promise<IsomorphicCryptoKey>;
  deriveBits(
    algorithm: { name: 'ECDH'; public: IsomorphicCryptoKey } | IsomorphicHkdfParams,
    baseKey: IsomorphicCryptoKey,
    length: number,
  ): Promise<ArrayBuffer>;
  encrypt(
    algorithm: IsomorphicAesGcmParams | IsomorphicAesCtrParams,
    key: IsomorphicCryptoKey,
    data: IsomorphicBufferSource,
  ): Promise<ArrayBuffer>;
  decrypt(algorithm: IsomorphicAesGcmParams, key: IsomorphicCryptoKey, data: IsomorphicBufferSource): Promise<ArrayBuffer>;
  digest(algorithm: 'SHA-256', data: IsomorphicBufferSource): Promise<ArrayBuffer>;
}

declare var crypto: IsomorphicCrypto;

declare function setTimeout(handler: () => void, ms?: number): unknown;

// Browsers, workers and Node >= 15: a macrotask turn without setTimeout's 4 ms nesting clamp.
declare class MessageChannel {
  readonly port1: { onmessage: ((event: unknown) => void) | null; close(): void };
  readonly port2: { postMessage(message: unknown): void };
}
declare function clearTimeout(handle: unknown): void;

declare var performance: { now(): number };

declare var console: {
  log(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
};
