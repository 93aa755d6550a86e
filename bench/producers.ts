// Every module that measures figures, in the order the runner calls them. A new module adds
// itself here; each owns the figure ids under its prefix (--only selects by id or prefix).
import type { Producer } from './harness.js';
import { healProducer } from './heal.js';
import { rssProducer } from './rss.js';
import { mapScanProducer, scrapeProducer } from './scrape.js';
import { tapProducer } from './tap.js';
import { kernelProducer } from './testrun.js';

export const PRODUCERS: Producer[] = [
  kernelProducer, // testrun.*        bench/testrun.ts
  tapProducer, // tap1.*, tap2.*      bench/tap.ts
  scrapeProducer, // scrape.*         bench/scrape.ts
  mapScanProducer, // mapscan.*       bench/scrape.ts
  healProducer, // heal.*             bench/heal.ts
  rssProducer, // rss.*               bench/rss.ts
  // attach.*: { prefix: 'attach.', run: attachFigures } from bench/attach.ts
];
