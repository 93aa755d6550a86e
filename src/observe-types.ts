// What both observe backends (eBPF in src/bpf/, libpcap in src/capture/) share: how frames are
// recorded (the tunables) and what an attachment is. Neither backend imports the other.

export interface Tunables {
  /** rate-limit window for ring-buffer events */
  eventWindowMs: number;
  /** events per {port, MAC} per window */
  eventsPerMac: number;
  /** events per CPU per window, all ports together */
  eventsPerCpu: number;
  /** MACs recorded per port (0 = no limit), so one port cannot flood the shared LRU */
  macsPerPort: number;
  /** arm each new MAC's convergence watch in the kernel at its first frame (guest ports only) */
  armAwait: boolean;
}

export const DEFAULT_TUNABLES: Tunables = { eventWindowMs: 1000, eventsPerMac: 32, eventsPerCpu: 4096, macsPerPort: 0, armAwait: false };

export interface Attachment {
  readonly ifindex: number;
  readonly ifname: string;
  readonly mode: 'tcx' | 'tc' | 'pcap';
}
