// The web dashboard at /ui: a few static files, read once at start-up and
// served from memory. The page itself holds no data and no secret, so it is
// served without a token (like /healthz); everything it shows comes from the
// public API with the token the operator types in. The Host check still
// applies, and a strict Content-Security-Policy keeps the page to its own
// scripts and this origin.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { PACKAGE_ROOT } from '../../src/paths.js';

interface Asset {
  body: Buffer;
  type: string;
}

const UI_DIR = join(PACKAGE_ROOT, 'ui');
const require = createRequire(import.meta.url);

/** URL → file. uPlot comes from its npm package (no CDN). */
function assetFiles(): Record<string, { path: string; type: string }> {
  const html = { path: join(UI_DIR, 'index.html'), type: 'text/html; charset=utf-8' };
  return {
    '/ui': html,
    '/ui/': html,
    '/ui/app.js': { path: join(UI_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' },
    '/ui/app.css': { path: join(UI_DIR, 'app.css'), type: 'text/css; charset=utf-8' },
    '/ui/vendor/uPlot.iife.min.js': { path: require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
    '/ui/vendor/uPlot.min.css': { path: require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
  };
}

const UI_CONFIG_ROUTE = '/ui/config.json';

/** The routes /ui serves; the auth layer lets them through without a token. */
export const UI_ROUTES = [...Object.keys(assetFiles()), UI_CONFIG_ROUTE];

const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  // uPlot sizes its elements through element.style.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface UiRoutesOptions {
  /** Whether API calls need a bearer token (TCP listeners); the page asks for one only then. */
  tokenRequired: boolean;
}

export const uiRoutes: FastifyPluginAsync<UiRoutesOptions> = async (app, { tokenRequired }) => {
  const assets = new Map<string, Asset>(
    Object.entries(assetFiles()).map(([url, { path, type }]) => [url, { body: readFileSync(path), type }]),
  );
  for (const [url, asset] of assets) {
    app.get(url, { schema: { hide: true } }, async (_request, reply) =>
      reply
        .type(asset.type)
        .header('content-security-policy', CONTENT_SECURITY_POLICY)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('cache-control', 'no-cache')
        .send(asset.body),
    );
  }
  // What the page needs to know before its first API call: asking with no
  // token only to be refused would put a 401 on every visit.
  app.get(UI_CONFIG_ROUTE, { schema: { hide: true } }, async (_request, reply) =>
    reply.header('cache-control', 'no-store').send({ tokenRequired }),
  );
};
