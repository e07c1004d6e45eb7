/**
 * One round of secure aggregation (Bonawitz et al., CCS 2017, the
 * honest-but-curious-server variant of §4/§6.1) with the SecAgg+ neighbour
 * graph (Bell et al., CCS 2020) as an option. Pure state machines: no
 * sockets, no timers. The transport calls them in this order:
 *
 *   step 0  AdvertiseKeys   client.advertise()              → server.receiveAdvertise(m)
 *                           server.closeAdvertise()          → KeyDirectory, to every client in U1
 *   step 1  ShareKeys       client.shareKeys(directory)      → server.receiveShareKeys(m)
 *                           server.closeShareKeys()          → one ForwardedShares per client in U2
 *   step 2  MaskedInput     client.maskInput(forwarded, x)   → server.receiveMaskedInput(m)
 *                           server.closeMaskedInput()        → UnmaskRequest, to every client in U3
 *   step 3  Unmasking       client.unmask(request)           → server.receiveUnmask(m)
 *                           server.finish()                  → SecAggResult (the decoded sum)
 *
 * `close*` is called when all expected messages are in or the step's timer
 * fires; later messages are refused as 'late'. The transport must set or check
 * each message's `from` against the authenticated connection: the messages
 * are not signed (no PKI; against an actively malicious server that forges
 * participants the paper's signature and consistency-check steps are needed).
 *
 * Privacy: the server learns only the sum of the inputs of U3 (those who sent
 * a masked input). It holds, for each participant, shares of one secret only:
 * the self-mask seed b_u for u ∈ U3 or the masking key s_u^SK for u ∈ U2∖U3,
 * never both (clients reveal one kind per owner, once; the server refuses the
 * other kind). Because t > (k + 1)/2 — a strict majority of the k + 1 holders
 * of u's shares — even a server that told different clients different survivor
 * lists could not collect t shares of both kinds without colluding clients.
 *
 * With a sparse graph the survivors U3 must stay connected in it, or the
 * server could read the partial sum of a part of U3 that has no edge to the
 * rest (a survivor whose neighbours all dropped: its input); both sides
 * refuse to unmask then.
 *
 * Robustness/security trade-off of (k, t): a round survives as long as every
 * needed secret keeps t live holders among its k + 1, i.e. up to k + 1 − t
 * drop-outs per neighbourhood; an honest-but-curious server together with
 * fewer than t colluding clients in any neighbourhood learns nothing beyond
 * the sum of the honest inputs (in SecAgg+ as long as the honest survivors
 * stay connected, which k ≈ 2 log2 n gives with high probability). Larger t:
 * more collusion resistance, less drop-out tolerance. All pairs is k = n − 1.
 */

export { recommendedThreshold, SHARE_CIPHERTEXT_BYTES, validateConfig, type SecAggConfig } from './config.ts';
export type {
  AdvertiseKeysMessage,
  ForwardedSharesMessage,
  KeyDirectoryMessage,
  MaskedInputMessage,
  MaskInputOptions,
  OwnedShare,
  PackedMaskedInputMessage,
  SecAggResult,
  ShareKeysMessage,
  UnmaskRequestMessage,
  UnmaskResponseMessage,
} from './messages.ts';
export { SecAggClient, type ClientPhase } from './client.ts';
export { SecAggServer, type ServerPhase, type ShareKind } from './server.ts';
