// JSON schemas of the HTTP API: inputs are validated, outputs serialized from these.
const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const nullableNum = { type: ['number', 'null'] } as const;

export const errorSchema = { type: 'object', properties: { error: str, statusCode: int }, required: ['error'] } as const;

const fact = {
  type: 'object',
  properties: {
    seq: int,
    at: str,
    monoNs: str,
    port: str,
    type: str,
    bridge: str,
    state: str,
    mac: str,
    kind: str,
    vlan: int,
    delivered: { type: 'boolean' },
    verdict: str,
    detail: str,
  },
  required: ['seq', 'at', 'monoNs', 'port', 'type'],
} as const;

const mac = {
  type: 'object',
  properties: {
    mac: str,
    verdict: str,
    vlan: int,
    firstFrameAt: str,
    announcements: int,
    framesBeforeForwarding: int,
    attachDelaySeconds: nullableNum,
    firstFrameDelaySeconds: nullableNum,
    rarpSent: int,
  },
} as const;

const vmSchema = {
  type: ['object', 'null'],
  properties: {
    name: str,
    uuid: str,
    namespace: str,
    source: str,
    domain: str,
    project: { type: 'object', properties: { uuid: str, name: str } },
  },
} as const;

export const portSchema = {
  type: 'object',
  properties: {
    name: str,
    ifindex: int,
    bridge: str,
    kind: str,
    guest: { type: 'boolean' },
    state: str,
    carrier: { type: 'boolean' },
    verdict: str,
    createdAt: str,
    forwardingSince: { type: ['string', 'null'] },
    macs: { type: 'array', items: mac },
    timeline: { type: 'array', items: fact },
    vm: vmSchema,
  },
} as const;

export const portsSchema = { type: 'object', properties: { ports: { type: 'array', items: portSchema } } } as const;

export const eventsQuery = {
  type: 'object',
  properties: {
    // bounded: an out-of-range cursor is a 400, not an Infinity the serializer cannot write
    since: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  },
  additionalProperties: false,
} as const;

export const eventsSchema = {
  type: 'object',
  properties: { events: { type: 'array', items: fact }, next: int, dropped: int },
} as const;

const milestone = {
  type: ['object', 'null'],
  properties: { at: str, afterFirstFrame: { type: 'number' }, uplink: str },
} as const;

export const migrationsSchema = {
  type: 'object',
  properties: {
    enabled: { type: 'boolean' },
    migrations: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          seq: int,
          port: str,
          bridge: str,
          mac: str,
          vm: vmSchema,
          state: str,
          convergenceSeconds: nullableNum,
          firstFrameAt: str,
          firstAnnouncement: milestone,
          joined: milestone,
          forwarding: milestone,
          firstRarpSent: milestone,
          firstUplinkOut: milestone,
          firstFabricUnicast: milestone,
          endedAt: { type: ['string', 'null'] },
          detail: { type: ['string', 'null'] },
        },
      },
    },
    next: int,
    dropped: int,
  },
} as const;

export const portParams = {
  type: 'object',
  properties: { name: { type: 'string', pattern: '^[^/\\s]{1,15}$' } },
  required: ['name'],
} as const;

export const announceBody = {
  type: 'object',
  properties: {
    port: { type: 'string', pattern: '^[^/\\s]{1,15}$' },
    mac: { type: 'string', pattern: '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$' },
  },
  required: ['port'],
  additionalProperties: false,
} as const;

export const announceReply = {
  type: 'object',
  properties: { port: str, macs: { type: 'array', items: str }, mode: str, rounds: int },
} as const;
