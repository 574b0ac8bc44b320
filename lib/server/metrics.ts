// Prometheus metrics (prom-client), in a registry of the server's own (so
// that several servers in one process, as in tests, do not collide). Labels
// carry key IDS, never keys; routes are the route patterns, never raw URLs.
import * as prom from 'prom-client';

export class ServerMetrics {
  readonly registry = new prom.Registry();
  readonly requests: prom.Counter<'route' | 'status'>;
  readonly latency: prom.Histogram<'route'>;
  readonly batchImages: prom.Histogram;
  readonly batchRequests: prom.Histogram;
  readonly queueDepth: prom.Gauge;
  readonly images: prom.Counter<'key_id'>;
  readonly noise: prom.Gauge<'key_id'>;
  readonly refused: prom.Counter<'reason'>;

  constructor(queueDepth: () => number) {
    const registers = [this.registry];
    prom.collectDefaultMetrics({ register: this.registry, prefix: 'encsec_' });
    this.requests = new prom.Counter({ name: 'encsec_http_requests_total', help: 'HTTP requests by route pattern and status code', labelNames: ['route', 'status'], registers });
    this.latency = new prom.Histogram({
      name: 'encsec_http_request_duration_seconds',
      help: 'time from request to response, by route pattern',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.batchImages = new prom.Histogram({ name: 'encsec_batch_images', help: 'images per native batch', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], registers });
    this.batchRequests = new prom.Histogram({ name: 'encsec_batch_requests', help: 'requests merged into one native batch', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers });
    this.queueDepth = new prom.Gauge({
      name: 'encsec_queue_images',
      help: 'images waiting for a native batch',
      registers,
      collect() {
        this.set(queueDepth());
      },
    });
    this.images = new prom.Counter({ name: 'encsec_images_total', help: 'images answered, by key id', labelNames: ['key_id'], registers });
    this.noise = new prom.Gauge({ name: 'encsec_defense_noise', help: "the noise level (sigma) of the key's defense at its last answer", labelNames: ['key_id'], registers });
    this.refused = new prom.Counter({ name: 'encsec_refused_total', help: 'requests refused, by reason (auth, budget, rate, queue, bad_request)', labelNames: ['reason'], registers });
  }
}
