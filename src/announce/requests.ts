// A manual re-announce request and its outcome: the domain's terms, which the HTTP layer serves.
export interface AnnounceRequest {
  port: string;
  mac?: string;
}

export type AnnounceResult =
  | { ok: true; port: string; macs: string[]; mode: string; rounds: number }
  | { ok: false; status: 404 | 409 | 429 | 503; error: string };
