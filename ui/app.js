// xdpwall dashboard: polls the public API once a second and renders with
// textContent only (nothing from the API is ever parsed as HTML).
// The token (for the API on TCP) is kept in sessionStorage, for this tab only.

const TOKEN_KEY = 'xdpwall.token';
const POLL_MS = 1000;
/** Chart history: five minutes of one-second samples. */
const HISTORY = 300;
const PALETTE_DROP = ['#c0392b', '#e67e22', '#8e44ad', '#d35400', '#e84393', '#6d214f', '#b71540'];
const PALETTE_PASS = ['#2e7d32', '#1565c0', '#00838f', '#558b2f', '#5c6bc0', '#00695c'];

const $ = (selector) => document.querySelector(selector);

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = parsed && parsed.error;
    throw new ApiError(response.status, error ? error.code : `HTTP_${response.status}`, error ? error.message : response.statusText);
  }
  return parsed;
}

/** An element with text children (strings become text nodes). */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'class') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function fillTable(tbody, rows, emptyText, columns) {
  const fresh = rows.length === 0 ? [el('tr', {}, el('td', { class: 'empty', colspan: String(columns) }, emptyText))] : rows;
  tbody.replaceChildren(...fresh);
}

const num = (value) => el('td', { class: 'num' }, Math.round(value).toLocaleString('en'));
const rate = (value) => el('td', { class: 'num' }, value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString('en'));

function humanBytes(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
const bytesCell = (value) => el('td', { class: 'num' }, humanBytes(value));
const endpoint = (ip, port) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

function showMessage(text, ok = false) {
  const node = $('#message');
  node.textContent = text;
  node.className = ok ? 'message ok' : 'message';
  node.hidden = !text;
}

function setStatus(text, error = false) {
  const node = $('#status');
  node.textContent = text;
  node.className = error ? 'status error' : 'status';
}

// ---- Traffic chart: packets/s by reason, from /v1/stats deltas ----

/** One series per direction and reason ("ingress/deny_src_cidr"). */
const traffic = {
  times: [],
  series: new Map(), // key → number|null[] aligned with times
  previous: null, // { t, totals: Map<key, {packets, bytes}> }
  plot: null,
  plotKeys: '',
};

function totalsByReason(stats) {
  const totals = new Map();
  for (const iface of stats.interfaces) {
    for (const direction of ['ingress', 'egress']) {
      for (const [reason, counter] of Object.entries(iface[direction].reasons)) {
        const key = `${direction}/${reason}`;
        const sum = totals.get(key) ?? { packets: 0, bytes: 0 };
        sum.packets += counter.packets;
        sum.bytes += counter.bytes;
        totals.set(key, sum);
      }
    }
  }
  return totals;
}

const isDrop = (key) => !key.split('/')[1].startsWith('pass_');

function recordStats(stats, nowMs) {
  const totals = totalsByReason(stats);
  const previous = traffic.previous;
  traffic.previous = { t: nowMs, totals };
  const rates = new Map();
  if (previous) {
    const seconds = Math.max((nowMs - previous.t) / 1000, 0.001);
    for (const [key, sum] of totals) {
      const before = previous.totals.get(key) ?? { packets: 0, bytes: 0 };
      // A counter that went down (daemon restarted) starts over from zero.
      const packets = sum.packets >= before.packets ? sum.packets - before.packets : sum.packets;
      const bytes = sum.bytes >= before.bytes ? sum.bytes - before.bytes : sum.bytes;
      rates.set(key, { packets: packets / seconds, bytes: bytes / seconds });
    }
    traffic.times.push(nowMs / 1000);
    for (const key of rates.keys()) {
      if (!traffic.series.has(key)) traffic.series.set(key, traffic.times.slice(0, -1).map(() => null));
    }
    for (const [key, values] of traffic.series) values.push(rates.get(key)?.packets ?? 0);
    if (traffic.times.length > HISTORY) {
      traffic.times.shift();
      for (const values of traffic.series.values()) values.shift();
    }
    drawChart();
  }
  renderRates(totals, rates);
}

function seriesLabel(key) {
  const [direction, reason] = key.split('/');
  return direction === 'ingress' ? reason : `${reason} (egress)`;
}

function drawChart() {
  const uPlot = globalThis.uPlot;
  const container = $('#chart');
  container.dataset.samples = String(traffic.times.length);
  if (!uPlot) return;
  const keys = [...traffic.series.keys()].sort((a, b) => Number(isDrop(b)) - Number(isDrop(a)) || a.localeCompare(b));
  const data = [traffic.times, ...keys.map((key) => traffic.series.get(key))];
  const signature = keys.join(',');
  if (traffic.plot && traffic.plotKeys === signature) {
    traffic.plot.setData(data);
    return;
  }
  // The set of reasons changed: build the chart again with one series each.
  traffic.plot?.destroy();
  let drops = 0;
  let passes = 0;
  const series = keys.map((key) => ({
    label: seriesLabel(key),
    stroke: isDrop(key) ? PALETTE_DROP[drops++ % PALETTE_DROP.length] : PALETTE_PASS[passes++ % PALETTE_PASS.length],
    width: 2,
    value: (_, v) => (v == null ? '–' : `${v.toFixed(1)}/s`),
  }));
  traffic.plot = new uPlot(
    {
      width: Math.max(container.clientWidth, 320),
      height: 260,
      series: [{}, ...series],
      axes: [{}, { label: 'packets/s', size: 60 }],
      scales: { y: { range: (_, min, max) => [0, Math.max(max, 1)] } },
    },
    data,
    container,
  );
  traffic.plotKeys = signature;
}

function renderRates(totals, rates) {
  const keys = [...totals.keys()].sort((a, b) => Number(isDrop(b)) - Number(isDrop(a)) || a.localeCompare(b));
  const rows = keys.map((key) => {
    const [direction, reason] = key.split('/');
    const current = rates.get(key) ?? { packets: 0, bytes: 0 };
    return el('tr', { class: isDrop(key) ? 'drop' : 'pass', 'data-reason': reason, 'data-direction': direction },
      el('td', {}, reason), el('td', {}, direction), rate(current.packets), el('td', { class: 'num' }, `${humanBytes(Math.round(current.bytes))}/s`), num(totals.get(key).packets));
  });
  fillTable($('#rates tbody'), rows, 'no packets counted yet', 5);
}

window.addEventListener('resize', () => {
  traffic.plot?.setSize({ width: Math.max($('#chart').clientWidth, 320), height: 260 });
});

// ---- Tables ----

async function refreshFlows() {
  const sort = $('#flow-sort').value;
  const { items } = await api('GET', `/v1/flows?limit=15&sort=${encodeURIComponent(sort)}`);
  fillTable($('#flows tbody'), items.map((f) => el('tr', {},
    el('td', {}, f.proto), el('td', {}, endpoint(f.src, f.srcPort)), el('td', {}, endpoint(f.dst, f.dstPort)), el('td', {}, f.iface ?? ''),
    num(f.ingress.packets), bytesCell(f.ingress.bytes), num(f.egress.packets), bytesCell(f.egress.bytes), el('td', {}, f.lastSeen),
  )), 'no flows yet', 9);
}

async function listBlocks() {
  const items = [];
  for (let offset = 0; offset < 10_000; offset += 1000) {
    const page = await api('GET', `/v1/blocks?limit=1000&offset=${offset}`);
    items.push(...page.items);
    if (page.items.length === 0 || items.length >= page.total) break;
  }
  return items;
}

async function removeBlock(block) {
  try {
    await api('DELETE', `/v1/blocks/${encodeURIComponent(block.id)}`);
    showMessage(`unblocked ${block.cidr}`, true);
  } catch (error) {
    showMessage(`could not unblock ${block.cidr}: ${error.code}: ${error.message}`);
  }
  await refreshBlocks();
}

async function refreshBlocks() {
  const blocks = await listBlocks();
  fillTable($('#blocks tbody'), blocks.map((b) => el('tr', { 'data-cidr': b.cidr },
    el('td', {}, b.id), el('td', {}, b.cidr), el('td', {}, b.direction), num(b.hits?.packets ?? 0), el('td', {}, b.createdAt), el('td', {}, b.comment ?? ''),
    el('td', {}, el('button', { type: 'button', class: 'remove', onclick: () => removeBlock(b) }, 'Remove')),
  )), 'nothing is blocked', 7);
  // Today drops are counted per block, not per address: the blocks that drop the most.
  const dropping = blocks.filter((b) => (b.hits?.packets ?? 0) > 0).sort((a, b) => b.hits.packets - a.hits.packets).slice(0, 10);
  fillTable($('#dropped tbody'), dropping.map((b) => el('tr', { class: 'drop' },
    el('td', {}, b.cidr), el('td', {}, b.direction), num(b.hits.packets), bytesCell(b.hits.bytes),
  )), 'no block has dropped anything', 4);
}

async function refreshInterfaces() {
  const { items } = await api('GET', '/v1/interfaces');
  fillTable($('#interfaces tbody'), items.map((i) => el('tr', { class: i.state === 'attached' ? 'pass' : 'drop' },
    el('td', {}, i.iface), el('td', {}, i.xdpMode), el('td', {}, i.requestedMode), el('td', {}, i.egress ? 'yes' : 'no'),
    el('td', {}, i.state === 'attached' ? 'attached' : `degraded: ${i.reason ?? ''}`),
  )), 'no interface is attached: nothing is filtered', 5);
}

async function addBlock(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const data = new FormData(form);
  const body = { cidr: String(data.get('cidr')).trim(), direction: String(data.get('direction')) };
  const comment = String(data.get('comment') ?? '').trim();
  if (comment) body.comment = comment;
  if (data.get('force')) body.force = true;
  try {
    const rule = await api('POST', '/v1/blocks', body);
    showMessage(`blocked ${rule.cidr} (${rule.direction}, id ${rule.id})`, true);
    form.reset();
  } catch (error) {
    showMessage(`could not block ${body.cidr}: ${error.code}: ${error.message}`);
  }
  await refreshBlocks();
}

// ---- Sections the API may not have yet (rules, lists, events) ----

function genericCell(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function renderGenericTable(section, items) {
  const columns = [...new Set(items.flatMap((item) => Object.keys(item)))].slice(0, 10);
  section.querySelector('thead').replaceChildren(el('tr', {}, ...columns.map((c) => el('th', {}, c))));
  fillTable(section.querySelector('tbody'), items.map((item) => el('tr', {}, ...columns.map((c) => el('td', {}, genericCell(item[c]))))),
    'none', Math.max(columns.length, 1));
}

/** One sampled packet (a /v1/events DropEvent) as a line: when, what, why, which rule, the packet. */
function describeEvent(data) {
  let e;
  try {
    e = JSON.parse(data);
  } catch {
    return data;
  }
  const at = (addr, port) => (port === null ? addr : e.family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`);
  const who = e.rule !== null ? `rule ${e.rule}` : e.block !== null ? `block ${e.block}` : '';
  const what = e.family === 0 ? 'non-IP' : `${e.proto} ${at(e.src, e.srcPort)} → ${at(e.dst, e.dstPort)}`;
  return [e.time.slice(11, 19), e.verdict, e.reason, who, e.iface ?? `ifindex ${e.ifindex}`, what, `${e.length} B`].filter(Boolean).join('  ');
}

/** Reads a Server-Sent Events stream with fetch (EventSource cannot send the token). */
async function followEvents(section) {
  const list = section.querySelector('ol');
  const token = sessionStorage.getItem(TOKEN_KEY);
  const response = await fetch('/v1/events', { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!response.ok || !response.body) return false;
  section.hidden = false;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return true;
    buffered += value;
    const frames = buffered.split('\n\n');
    buffered = frames.pop();
    for (const frame of frames) {
      const lines = frame.split('\n');
      if (lines.some((line) => line.startsWith('event:'))) continue; // the loss counters, not a packet
      const data = lines.filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trim()).join('\n');
      if (!data) continue;
      list.prepend(el('li', {}, describeEvent(data)));
      while (list.children.length > 100) list.lastChild.remove();
    }
  }
}

const optional = { probed: false, tables: [] };

/**
 * Shows the sections whose routes this daemon's API has, as its OpenAPI
 * document lists them (asking each route would log a 404 for every absent one).
 */
async function probeOptionalSections() {
  let paths;
  try {
    paths = (await api('GET', '/docs/json')).paths ?? {};
  } catch {
    return;
  }
  for (const section of document.querySelectorAll('section.optional')) {
    const path = section.dataset.probe;
    if (!(path in paths)) continue;
    if (section.id === 'events') {
      followEvents(section).catch(() => {});
      continue;
    }
    try {
      renderGenericTable(section, (await api('GET', path)).items ?? []);
      section.hidden = false;
      optional.tables.push(section);
    } catch (error) {
      showMessage(`${path}: ${error.message}`);
    }
  }
}

async function refreshOptional() {
  for (const section of optional.tables) {
    const body = await api('GET', section.dataset.probe);
    renderGenericTable(section, body.items ?? []);
  }
}

// ---- Start-up and the poll loop ----

let polling = false;
let tick = 0;

async function poll() {
  try {
    const stats = await api('GET', '/v1/stats');
    recordStats(stats, Date.now());
    // Tables change slower than the chart: every other second.
    if (tick++ % 2 === 0) await Promise.all([refreshFlows(), refreshBlocks(), refreshInterfaces(), refreshOptional()]);
    setStatus(`live · updated ${new Date().toLocaleTimeString('en-GB')}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return askForToken(error.message);
    setStatus(`cannot reach the API: ${error.message}`, true);
  }
  setTimeout(poll, POLL_MS);
}

function askForToken(reason) {
  polling = false;
  $('#dashboard').hidden = true;
  $('#token-form').hidden = false;
  $('#forget-token').hidden = true;
  setStatus(reason ? `sign in: ${reason}` : 'sign in', Boolean(reason));
  $('#token-input').focus();
}

let tokenRequired = true;

async function start() {
  try {
    tokenRequired = (await api('GET', '/ui/config.json')).tokenRequired;
    if (tokenRequired && !sessionStorage.getItem(TOKEN_KEY)) return askForToken('');
    await api('GET', '/v1/interfaces');
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return askForToken(error.message);
    setStatus(`cannot reach the API: ${error.message}`, true);
    setTimeout(start, 2000);
    return;
  }
  $('#token-form').hidden = true;
  $('#dashboard').hidden = false;
  $('#forget-token').hidden = !tokenRequired;
  if (!optional.probed) {
    optional.probed = true;
    await probeOptionalSections();
  }
  if (!polling) {
    polling = true;
    tick = 0;
    poll();
  }
}

$('#token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('#token-input').value.trim());
  $('#token-input').value = '';
  showMessage('');
  start();
});
$('#forget-token').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  askForToken('');
});
$('#block-form').addEventListener('submit', addBlock);
$('#flow-sort').addEventListener('change', () => refreshFlows().catch(() => {}));

start();
