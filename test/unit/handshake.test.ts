import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkHello,
  computeProof,
  createNonce,
  decodeHandshakeMessage,
  deriveAuthKey,
  deriveSecretKey,
  encodeOpeningTranscript,
  openIdentity,
  sealIdentity,
  type OpeningTranscript,
  deriveSessionKeys,
  encodeHandshakeMessage,
  encodeTranscript,
  HandshakeType,
  matchProof,
  negotiateProtocol,
  PROTOCOL_VERSION_MAX,
  PROTOCOL_VERSION_MIN,
  type HandshakeMessage,
  type HelloMessage,
  type Transcript,
} from '../../src/transport/handshake.js';

const nonceA = Buffer.alloc(32, 0xa1);
const nonceB = Buffer.alloc(32, 0xb2);

const transcript: Transcript = {
  proto: 1,
  clusterId: 'shop',
  dialerNodeId: 'engine-1',
  dialerAddress: '10.0.0.1:8020',
  channel: 'control',
  dialerNonce: nonceA,
  listenerNodeId: 'engine-2',
  listenerAddress: '10.0.0.2:8020',
  listenerNonce: nonceB,
};

describe('key derivation', () => {
  it('derives the same auth key from the same secret and cluster id, and another from either changed', () => {
    const k = deriveAuthKey('s3cret', 'shop');
    assert.equal(k.length, 32);
    assert.deepEqual(deriveAuthKey('s3cret', 'shop'), k);
    assert.notDeepEqual(deriveAuthKey('s3cret!', 'shop'), k);
    assert.notDeepEqual(deriveAuthKey('s3cret', 'shop2'), k);
    assert.equal(k.includes(Buffer.from('s3cret')), false);
  });

  it('derives deterministic session keys, a different key per direction', () => {
    const keys = deriveSessionKeys('s3cret', 'shop', nonceA, nonceB);
    assert.equal(keys.dialerToListener.length, 32);
    assert.equal(keys.listenerToDialer.length, 32);
    assert.notDeepEqual(keys.dialerToListener, keys.listenerToDialer);
    assert.deepEqual(deriveSessionKeys('s3cret', 'shop', nonceA, nonceB), keys);
  });

  it('derives different session keys when any nonce, the secret or the cluster id differs', () => {
    const base = deriveSessionKeys('s3cret', 'shop', nonceA, nonceB).dialerToListener;
    const variants = [
      deriveSessionKeys('s3cret', 'shop', createNonce(), nonceB),
      deriveSessionKeys('s3cret', 'shop', nonceA, createNonce()),
      deriveSessionKeys('s3cret', 'shop', nonceB, nonceA),
      deriveSessionKeys('other', 'shop', nonceA, nonceB),
      deriveSessionKeys('s3cret', 'shop2', nonceA, nonceB),
    ];
    for (const v of variants) assert.notDeepEqual(v.dialerToListener, base);
  });
});

describe('transcript binding', () => {
  const key = deriveAuthKey('s3cret', 'shop');
  const mac = computeProof(key, 'dialer', encodeTranscript(transcript));

  const changes: Array<[string, Partial<Transcript>]> = [
    ['proto', { proto: 2 }],
    ['clusterId', { clusterId: 'shop2' }],
    ['dialerNodeId', { dialerNodeId: 'engine-9' }],
    ['dialerAddress', { dialerAddress: '10.0.0.1:8021' }],
    ['channel', { channel: 'bulk' }],
    ['dialerNonce', { dialerNonce: Buffer.alloc(32, 0xa2) }],
    ['listenerNodeId', { listenerNodeId: 'engine-3' }],
    ['listenerAddress', { listenerAddress: '10.0.0.3:8020' }],
    ['listenerNonce', { listenerNonce: Buffer.alloc(32, 0xb3) }],
    // Moving bytes between adjacent fields must not produce the same encoding.
    ['field boundary', { dialerNodeId: 'engine-110.0.0.1', dialerAddress: ':8020' }],
  ];
  for (const [field, change] of changes) {
    it(`changes the proof when ${field} changes`, () => {
      const other = computeProof(key, 'dialer', encodeTranscript({ ...transcript, ...change }));
      assert.notDeepEqual(other, mac);
      assert.equal(matchProof([key], 'dialer', encodeTranscript({ ...transcript, ...change }), mac), -1);
    });
  }

  it('gives a dialer proof and a listener proof that cannot stand in for each other', () => {
    const t = encodeTranscript(transcript);
    assert.notDeepEqual(computeProof(key, 'listener', t), mac);
    assert.equal(matchProof([key], 'listener', t, mac), -1);
  });

  it('matches a proof made with a previous secret at its index, and none with an unknown secret', () => {
    const t = encodeTranscript(transcript);
    const keys = [deriveAuthKey('new', 'shop'), deriveAuthKey('old', 'shop'), deriveAuthKey('older', 'shop')];
    assert.equal(matchProof(keys, 'dialer', t, computeProof(keys[0]!, 'dialer', t)), 0);
    assert.equal(matchProof(keys, 'dialer', t, computeProof(keys[2]!, 'dialer', t)), 2);
    assert.equal(matchProof(keys, 'dialer', t, computeProof(deriveAuthKey('stranger', 'shop'), 'dialer', t)), -1);
    assert.equal(matchProof(keys, 'dialer', t, Buffer.alloc(5)), -1);
  });
});

describe('handshake messages', () => {
  const hello: HelloMessage = {
    type: 'hello',
    protoMin: PROTOCOL_VERSION_MIN,
    protoMax: PROTOCOL_VERSION_MAX,
    channel: 'bulk',
    nonce: nonceA,
  };
  const messages: HandshakeMessage[] = [
    hello,
    { type: 'challenge', proto: 2, nonce: nonceB },
    { type: 'proof', proofs: [{ mac: Buffer.alloc(32, 1), sealed: Buffer.alloc(40, 3) }, { mac: Buffer.alloc(32, 5), sealed: Buffer.alloc(41, 6) }] },
    { type: 'welcome', choice: 1, mac: Buffer.alloc(32, 2), sealed: Buffer.alloc(40, 4) },
    { type: 'refuse', code: 'secret-mismatch', message: 'no' },
  ];

  it('round-trips every message type, tagged with its type byte', () => {
    const tags = [HandshakeType.HELLO, HandshakeType.CHALLENGE, HandshakeType.PROOF, HandshakeType.WELCOME, HandshakeType.REFUSE];
    messages.forEach((m, i) => {
      const body = encodeHandshakeMessage(m);
      assert.equal(body[0], tags[i]);
      assert.deepEqual(decodeHandshakeMessage(body), m);
    });
  });

  it('keeps the type numbers of the wire contract', () => {
    assert.deepEqual(HandshakeType, { HELLO: 1, CHALLENGE: 2, PROOF: 3, WELCOME: 4, REFUSE: 5 });
  });

  it('rejects malformed messages', () => {
    const withBody = (type: number, body: unknown) => Buffer.concat([Buffer.from([type]), Buffer.from(JSON.stringify(body))]);
    const bad: Array<[string, Buffer]> = [
      ['empty', Buffer.alloc(0)],
      ['unknown type', withBody(99, {})],
      ['not JSON', Buffer.concat([Buffer.from([1]), Buffer.from('{nope')])],
      ['JSON array', withBody(3, [1])],
      ['short nonce', withBody(1, { ...JSON.parse(encodeHandshakeMessage(hello).subarray(1).toString()), nonce: 'AAAA' })],
      ['bad channel', withBody(1, { ...JSON.parse(encodeHandshakeMessage(hello).subarray(1).toString()), channel: 'gossip' })],
      ['inverted versions', withBody(1, { ...JSON.parse(encodeHandshakeMessage(hello).subarray(1).toString()), protoMin: 3, protoMax: 2 })],
      ['short mac', withBody(3, { proofs: [{ mac: Buffer.alloc(16).toString('base64'), sealed: Buffer.alloc(40).toString('base64') }] })],
      ['proof without identity', withBody(3, { proofs: [{ mac: Buffer.alloc(32).toString('base64') }] })],
      ['no proof', withBody(3, { proofs: [] })],
      ['too many proofs', withBody(3, { proofs: Array.from({ length: 5 }, () => ({ mac: Buffer.alloc(32).toString('base64'), sealed: Buffer.alloc(40).toString('base64') })) })],
      ['huge sealed identity', withBody(3, { proofs: [{ mac: Buffer.alloc(32).toString('base64'), sealed: Buffer.alloc(10_000).toString('base64') }] })],
      ['welcome without a choice', withBody(4, { mac: Buffer.alloc(32).toString('base64'), sealed: Buffer.alloc(40).toString('base64') })],
      ['welcome choosing past the proofs', withBody(4, { choice: 4, mac: Buffer.alloc(32).toString('base64'), sealed: Buffer.alloc(40).toString('base64') })],
      ['refuse without message', withBody(5, { code: 'secret-mismatch' })],
    ];
    for (const [what, body] of bad) assert.equal(decodeHandshakeMessage(body), undefined, what);
  });

  it('keeps a refusal whose code this build does not know, as a protocol mismatch', () => {
    const body = Buffer.concat([Buffer.from([5]), Buffer.from(JSON.stringify({ code: 'future-reason', message: 'why' }))]);
    assert.deepEqual(decodeHandshakeMessage(body), { type: 'refuse', code: 'protocol-mismatch', message: 'why' });
  });
});

describe('checkHello and protocol negotiation', () => {
  const hello: HelloMessage = { type: 'hello', protoMin: 2, protoMax: 2, channel: 'control', nonce: nonceA };

  it('picks the highest common version, or none', () => {
    assert.equal(negotiateProtocol(1, 3, 2, 5), 3);
    assert.equal(negotiateProtocol(1, 1, 1, 1), 1);
    assert.equal(negotiateProtocol(4, 6, 1, 3), undefined);
    assert.equal(negotiateProtocol(1, 1, 2, 3), undefined);
  });

  it('refuses a version-1 HELLO as a protocol mismatch, and reads none of its identifying fields', () => {
    const v1 = Buffer.concat([
      Buffer.from([HandshakeType.HELLO]),
      Buffer.from(JSON.stringify({ protoMin: 1, protoMax: 1, clusterId: 'shop', nodeId: 'engine-1', address: 'h:1', channel: 'control', nonce: nonceA.toString('base64') })),
    ]);
    const decoded = decodeHandshakeMessage(v1);
    assert.deepEqual(decoded, { type: 'hello', protoMin: 1, protoMax: 1, channel: 'control', nonce: nonceA });
    const verdict = checkHello(decoded as HelloMessage);
    assert.deepEqual(verdict, {
      ok: false,
      code: 'protocol-mismatch',
      message: `no common cluster-protocol version: this node speaks ${PROTOCOL_VERSION_MIN}-${PROTOCOL_VERSION_MAX}, the connecting node 1-1`,
    });
  });

  it('accepts a matching hello with the negotiated version, whatever the cluster', () => {
    assert.deepEqual(checkHello({ ...hello, protoMax: 5 }), { ok: true, proto: PROTOCOL_VERSION_MAX });
    // A node of the previous build (protocol 2 only) is still met: in its version, which reads no MessagePack.
    assert.deepEqual(checkHello({ ...hello, protoMin: 2, protoMax: 2 }), { ok: true, proto: 2 });
  });
});

describe('sealed identities', () => {
  const opening: OpeningTranscript = { proto: 2, channel: 'control', dialerNonce: nonceA, listenerNonce: nonceB };
  const identity = { clusterId: 'shop', nodeId: 'engine-1', address: '10.0.0.1:8020' };

  it('opens with the same secret, role and transcript, and hides every field', () => {
    const sealed = sealIdentity('s3cret', 'dialer', opening, identity);
    assert.deepEqual(openIdentity('s3cret', 'dialer', opening, sealed), identity);
    for (const field of Object.values(identity)) assert.equal(sealed.includes(Buffer.from(field)), false, field);
  });

  it('does not open with another secret, role, nonce or channel, nor when tampered', () => {
    const sealed = sealIdentity('s3cret', 'dialer', opening, identity);
    assert.equal(openIdentity('other', 'dialer', opening, sealed), undefined);
    assert.equal(openIdentity('s3cret', 'listener', opening, sealed), undefined);
    assert.equal(openIdentity('s3cret', 'dialer', { ...opening, listenerNonce: createNonce() }, sealed), undefined);
    assert.equal(openIdentity('s3cret', 'dialer', { ...opening, channel: 'bulk' }, sealed), undefined);
    const tampered = Buffer.from(sealed);
    tampered[0]! ^= 1;
    assert.equal(openIdentity('s3cret', 'dialer', opening, tampered), undefined);
    assert.equal(openIdentity('s3cret', 'dialer', opening, Buffer.alloc(8)), undefined);
  });

  it('proves the secret alone with a key that does not depend on the cluster id', () => {
    const t = encodeOpeningTranscript(opening);
    const mac = computeProof(deriveSecretKey('s3cret'), 'dialer', t);
    assert.equal(matchProof([deriveSecretKey('new'), deriveSecretKey('s3cret')], 'dialer', t, mac), 1);
    assert.equal(matchProof([deriveSecretKey('s3cret')], 'dialer', encodeOpeningTranscript({ ...opening, proto: 3 }), mac), -1);
    assert.notDeepEqual(deriveSecretKey('s3cret'), deriveAuthKey('s3cret', ''));
  });
});
