// The flags of `bridgewatch lab`, which the CLI parses strictly before src/lab/lab.ts reads
// their values. A new lab flag is one line here (its name, string or boolean, and its help).
import type { OptionDecls } from './args.js';

export const LAB_OPTIONS: OptionDecls = {
  'late-ms': { type: 'string', value: 'N', help: 'host B\'s "hotplug script" joins the tap N ms after the guest resumed [1000; 1200 after the migration with --guest linux]' },
  'interval-ms': { type: 'string', value: 'N', help: 'ping interval of the client, ms [1000; 200 with --guest linux]' },
  'cap-s': { type: 'string', value: 'N', help: 'give up on an outage after N s [90; 15 with --qemu]' },
  guest: { type: 'string', value: 'sim|linux', help: 'linux: a real Linux guest (Debian\'s kernel, scripts/guest-image.sh) in QEMU, run with the tap on time, then late without and with bridgewatch [sim]' },
  nic: { type: 'string', value: 'e1000|virtio', help: 'the Linux guest\'s NIC [e1000]' },
  keep: { type: 'boolean', help: 'leave the lab up with bridgewatch serving in host B (remove it with --down)' },
  qemu: { type: 'boolean', help: 'migrate with two real QEMU processes instead of a simulated guest' },
  down: { type: 'boolean', help: 'remove a lab left up by --keep (or by a crash)' },
  json: { type: 'boolean', help: 'the summary as JSON on stdout (the table goes to stderr)' },
  'no-color': { type: 'boolean', help: 'no colors in the progress lines' },
};
