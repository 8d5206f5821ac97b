// The streamsql web console: pipelines (pushed every second), live tables (pushed as they
// change) and ad-hoc queries. No framework and no network but the streamsql process itself.
'use strict';

const token = new URLSearchParams(location.search).get('token');
const api = (path) => (token ? path + (path.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : path);
const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const COLOURS = ['#2f6fde', '#e0792b', '#1f8a4c', '#c93434', '#7b4bc4', '#138b95', '#b7791f', '#d6479a', '#5b6472', '#6a9a1f'];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- formatting ---------------------------------------------------------------------------

const thousands = (n) => (n === null || n === undefined ? '–' : Math.round(n).toLocaleString('en-US'));
function number(n) {
  if (n === null || n === undefined) return '';
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  const abs = Math.abs(n);
  return n.toLocaleString('en-US', { maximumFractionDigits: abs >= 100 ? 1 : abs >= 1 ? 3 : 6 });
}
// Event times are TIMESTAMP values without a zone, sent as epoch milliseconds: shown as written.
const timeText = (ms) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
const clockText = (ms) => new Date(ms).toISOString().slice(11, 19);
function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  const s = ms / 1000;
  if (Math.abs(s) < 60) return s.toFixed(1) + ' s';
  if (Math.abs(s) < 3600) return (s / 60).toFixed(1) + ' min';
  if (Math.abs(s) < 86400 * 2) return (s / 3600).toFixed(1) + ' h';
  return thousands(s / 86400) + ' d';
}
function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + ' ' + units[i];
}
function cellText(value, kind) {
  if (value === null || value === undefined) return '';
  if (kind === 'time') return timeText(value);
  if (kind === 'number') return number(value);
  return String(value);
}

// --- pages --------------------------------------------------------------------------------

const view = { page: null, table: null };

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  const page = ['pipelines', 'tables', 'query'].includes(parts[0]) ? parts[0] : 'pipelines';
  for (const name of ['pipelines', 'tables', 'query']) {
    $('page-' + name).hidden = name !== page;
    $('nav-' + name).classList.toggle('active', name === page);
  }
  view.page = page;
  if (page === 'tables') {
    const name = parts[1] ? decodeURIComponent(parts[1]) : (tables[0] && tables[0].name);
    openTable(name || null);
  } else {
    openTable(null);
  }
}

// --- pipelines ----------------------------------------------------------------------------

const previous = new Map(); // pipeline id → { at, rows_in, nodes: Map(id → node) }
const cards = new Map();

function watchPipelines() {
  const source = new EventSource(api('/api/pipelines/events'));
  source.onmessage = (event) => showPipelines(JSON.parse(event.data));
}

function showPipelines(data) {
  const box = $('pipelines');
  if (!data.pipelines.length) {
    box.replaceChildren(el('p', { class: 'muted', text: 'No pipelines.' }));
  } else if (!cards.size) {
    box.replaceChildren();
  }
  let running = 0;
  let rate = 0;
  for (const p of data.pipelines) {
    const before = previous.get(p.id);
    const seconds = before ? (data.now_ms - before.at) / 1000 : 0;
    const perSecond = (now, then) => (before && seconds > 0 ? Math.max(0, now - then) / seconds : null);
    const eventsPerSecond = before ? perSecond(p.rows_in, before.rows_in) : null;
    if (p.state === 'running') { running++; rate += eventsPerSecond || 0; }
    let card = cards.get(p.id);
    if (!card) {
      card = pipelineCard(p);
      cards.set(p.id, card);
      box.append(card.root);
    }
    card.root.dataset.rowsIn = p.rows_in;
    card.root.dataset.state = p.state;
    card.badge.textContent = p.state;
    card.badge.className = 'badge ' + p.state;
    card.stop.hidden = p.state !== 'running';
    const stats = [
      ['events/s', eventsPerSecond === null ? '–' : thousands(eventsPerSecond)],
      ['rows in', thousands(p.rows_in)],
      ['rows out', thousands(p.rows_out)],
      ['late rows', thousands(p.late_rows)],
      ['bad records', thousands(p.bad_records)],
      ['watermark', p.watermark_ms === null ? '–' : timeText(p.watermark_ms)],
      ['watermark lag', duration(p.watermark_lag_ms)],
      ['parallelism', p.parallelism],
    ];
    if (p.source_errors) stats.push(['failed source requests', thousands(p.source_errors)]);
    if (p.sink_retries) stats.push(['sink retries', thousands(p.sink_retries)]);
    if (p.checkpoints) {
      const k = p.last_checkpoint;
      stats.push(['last checkpoint', k ? `#${k.id} · ${bytes(k.bytes)} · ${k.duration_ms} ms` : 'none yet']);
    }
    card.stats.replaceChildren(...stats.map(([name, value]) => el('div', {}, el('b', { text: value }), el('span', { text: name }))));
    card.graph.replaceChildren(drawGraph(p, before, seconds));
    previous.set(p.id, { at: data.now_ms, rows_in: p.rows_in, nodes: new Map(p.nodes.map((n) => [n.id, n])) });
  }
  $('summary').textContent = `${running} running · ${thousands(rate)} events/s`;
  refreshTables();
}

function pipelineCard(p) {
  const badge = el('span', { class: 'badge' });
  const stop = el('button', { class: 'stop', type: 'button', text: 'Stop', 'data-pipeline': p.id });
  stop.addEventListener('click', async () => {
    if (!confirm(`Stop pipeline ${p.id} (${p.name})?`)) return;
    stop.disabled = true;
    const answer = await fetch(api(`/api/pipelines/${p.id}/stop`), { method: 'POST' });
    if (!answer.ok) alert((await answer.json()).error);
  });
  const stats = el('div', { class: 'stats' });
  const graph = el('div', { class: 'graph' });
  const root = el('div', { class: 'card pipeline', 'data-pipeline': p.id },
    el('div', { class: 'card-head' }, el('h3', { text: `${p.id} · ${p.name}` }), badge, stop),
    stats, graph,
    el('details', {}, el('summary', { text: 'SQL' }), el('pre', { text: p.sql })),
    el('details', {}, el('summary', { text: 'Plan (EXPLAIN)' }), el('pre', { text: p.plan })));
  return { root, badge, stop, stats, graph };
}

// The graph left to right: each node in the column after its deepest input.
function drawGraph(p, before, seconds) {
  const depth = new Map();
  const depthOf = (node) => {
    if (!depth.has(node.id)) {
      depth.set(node.id, node.inputs.length ? 1 + Math.max(...node.inputs.map((i) => depthOf(p.nodes[i.from - 1]))) : 0);
    }
    return depth.get(node.id);
  };
  const columns = [];
  for (const node of p.nodes) {
    const d = depthOf(node);
    (columns[d] = columns[d] || []).push(node);
  }
  const W = 250, H = 62, GAP_X = 70, GAP_Y = 14;
  const place = new Map();
  columns.forEach((nodes, c) => nodes.forEach((node, r) => place.set(node.id, { x: 10 + c * (W + GAP_X), y: 10 + r * (H + GAP_Y) })));
  const width = 20 + columns.length * (W + GAP_X) - GAP_X;
  const height = 20 + Math.max(...columns.map((c) => c.length)) * (H + GAP_Y) - GAP_Y;
  const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}` });
  const rate = (node, field) => {
    const then = before && before.nodes.get(node.id);
    return then && seconds > 0 ? Math.max(0, node[field] - then[field]) / seconds : null;
  };
  for (const node of p.nodes) {
    const to = place.get(node.id);
    for (const input of node.inputs) {
      const fromNode = p.nodes[input.from - 1];
      const from = place.get(input.from);
      // An edge is full when its sender spent over a tenth of the last second waiting for room.
      const waited = rate(fromNode, 'backpressured_ms');
      const full = waited !== null && waited > 100;
      const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2;
      root.append(svg('path', { class: 'edge' + (full ? ' full' : ''), d: `M${x1},${y1} C${x1 + 35},${y1} ${x2 - 35},${y2} ${x2},${y2}` }));
      const label = input.edge + (full ? ` · full ${Math.round(waited / 10)}%` : '');
      root.append(svg('text', { class: 'edge-label', x: (x1 + x2) / 2 - 24, y: (y1 + y2) / 2 - 4 }, label));
    }
  }
  for (const node of p.nodes) {
    const at = place.get(node.id);
    const g = svg('g', { class: 'node', transform: `translate(${at.x},${at.y})` });
    g.append(svg('rect', { width: W, height: H, rx: 5 }));
    g.append(svg('text', { x: 8, y: 16, 'font-weight': 600 }, `[${node.id}] ${node.name}` + (node.instances > 1 ? ` ×${node.instances}` : '')));
    g.append(svg('text', { x: 8, y: 33 }, `in ${thousands(node.rows_in)} · out ${thousands(node.rows_out)}`));
    const r = rate(node, 'rows_in');
    const extra = [];
    if (node.late_rows) extra.push(`${thousands(node.late_rows)} late`);
    if (node.state_bytes) extra.push(`state ${bytes(node.state_bytes)}`);
    if (node.batches) extra.push(`${(1000 * node.batch_seconds_sum / node.batches).toFixed(2)} ms/batch`);
    g.append(svg('text', { x: 8, y: 50 }, [r === null ? '' : `${thousands(r)} rows/s`, ...extra].filter(Boolean).join(' · ')));
    root.append(g);
  }
  return root;
}

// --- live tables --------------------------------------------------------------------------

let tables = [];
let tablesShown = '';

async function refreshTables() {
  const answer = await fetch(api('/api/tables'));
  if (!answer.ok) return;
  tables = (await answer.json()).tables;
  if (view.table && !live.table) {
    live.table = tables.find((t) => t.name === view.table) || null;
    if (live.table) { $('chart-kind').value = live.table.chart.kind; drawLive(); }
  }
  const key = tables.map((t) => t.name).join(',');
  if (key === tablesShown) return;
  tablesShown = key;
  const link = (t) => el('a', { href: '#/tables/' + encodeURIComponent(t.name), 'data-table': t.name, text: t.name });
  $('table-links').replaceChildren(...(tables.length
    ? tables.map((t) => el('li', {}, link(t), ` — ${t.chart.kind === 'table' ? 'a table' : `a ${t.chart.kind} chart`} of ${describeChart(t.chart)}`))
    : [el('li', { class: 'muted', text: 'No live tables yet.' })]));
  $('table-list').replaceChildren(...tables.map((t) => el('li', {}, link(t))));
  feature();
  if (view.page === 'tables' && !view.table) route();
  markActive();
}

function describeChart(chart) {
  if (chart.kind === 'table') return 'its rows';
  if (chart.kind === 'bar') return `${chart.y} per ${chart.x}`;
  if (chart.kind === 'value') return chart.y;
  return `${chart.y} over ${chart.x}` + (chart.series ? ` by ${chart.series}` : '');
}

function markActive() {
  for (const a of $('table-list').querySelectorAll('a')) a.classList.toggle('active', a.dataset.table === view.table);
}

const live = { source: null, data: null, table: null };

function openTable(name) {
  if (name === view.table && live.source) return;
  if (live.source) live.source.close();
  live.source = null;
  live.data = null;
  view.table = name;
  markActive();
  if (!name) return;
  live.table = tables.find((t) => t.name === name) || null;
  if (live.table) $('chart-kind').value = live.table.chart.kind;
  $('chart-title').textContent = name;
  $('chart').replaceChildren(el('p', { class: 'muted', text: 'Waiting for rows…' }));
  $('table-view').replaceChildren();
  const cap = Math.max(1, Math.min(10000, Number($('row-cap').value) || 2000));
  live.source = new EventSource(api(`/api/tables/${encodeURIComponent(name)}/events?limit=${cap}`));
  live.source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.error) { $('chart-note').textContent = data.error; return; }
    live.data = data;
    drawLive();
  };
}

function drawLive() {
  const data = live.data;
  if (!data) return;
  const declared = live.table ? live.table.chart : { kind: 'table' };
  const chart = chooseChart({ ...declared, kind: $('chart-kind').value }, data.columns);
  const range = Number($('chart-range').value);
  const drawn = drawChart($('chart'), data.columns, data.rows, chart, range);
  $('chart-note').textContent = `${thousands(data.rows.length)} of ${thousands(data.total_rows)} rows (version ${data.version})` +
    (drawn.note ? ' · ' + drawn.note : '');
  $('table-view').replaceChildren(rowsTable(data.columns, data.rows.slice(-200).reverse()));
}

// The declared chart, with the columns a different kind needs filled in from the table's.
function chooseChart(chart, columns) {
  const of = (kind, skip = []) => (columns.find((c) => c.kind === kind && !skip.includes(c.name)) || {}).name || null;
  const has = (name) => name && columns.some((c) => c.name === name);
  const out = { ...chart };
  const time = (name) => has(name) && columns.find((c) => c.name === name).kind === 'time';
  if (['line', 'area', 'value'].includes(out.kind)) {
    if (!time(out.x)) out.x = ['window_start', 'window_end'].find(time) || of('time');
    if (out.kind !== 'value' && !has(out.series)) out.series = of('text');
    if (out.kind === 'value') out.series = null;
  } else if (out.kind === 'bar') {
    if (!has(out.x) || time(out.x)) out.x = chart.series && has(chart.series) ? chart.series : of('text');
    out.series = null;
  }
  if (!has(out.y)) out.y = of('number', [out.x, out.series]);
  return out;
}

// The pipelines page opens on the first live table that has a chart, drawn as it declares.
const featured = { source: null, name: null };

function feature() {
  const table = tables.find((t) => t.chart.kind !== 'table');
  if (!table || featured.name === table.name) return;
  if (featured.source) featured.source.close();
  featured.name = table.name;
  $('featured').hidden = false;
  $('featured-title').textContent = `${table.name} — ${describeChart(table.chart)}`;
  $('featured-title').href = '#/tables/' + encodeURIComponent(table.name);
  featured.source = new EventSource(api(`/api/tables/${encodeURIComponent(table.name)}/events?limit=2000`));
  featured.source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.error) return;
    const drawn = drawChart($('featured-chart'), data.columns, data.rows, chooseChart(table.chart, data.columns), 300000);
    $('featured-note').textContent = drawn.note || '';
  };
}

// --- charts -------------------------------------------------------------------------------

// Draws `rows` into `box` as `chart` says; the svg carries the number of data points drawn
// (`data-points`). Returns { points, note }.
function drawChart(box, columns, rows, chart, range) {
  const index = (name) => columns.findIndex((c) => c.name === name);
  const [xi, yi, si] = [index(chart.x), index(chart.y), index(chart.series)];
  let drawn;
  if (chart.kind === 'table' || yi < 0) {
    drawn = { node: el('p', { class: 'muted', text: chart.kind === 'table' ? 'Shown as a table (below).' : 'No numeric column to draw.' }), points: 0 };
  } else if (chart.kind === 'bar') {
    drawn = barChart(rows, xi, yi, chart);
  } else if (chart.kind === 'value') {
    drawn = valueChart(rows, xi, yi, chart, range);
  } else if (xi < 0) {
    drawn = { node: el('p', { class: 'muted', text: 'No time column for a line chart.' }), points: 0 };
  } else {
    drawn = lineChart(rows, xi, yi, si, chart, range);
  }
  if (drawn.node instanceof SVGElement) {
    drawn.node.setAttribute('data-points', drawn.points);
    drawn.node.setAttribute('data-kind', chart.kind);
  }
  box.replaceChildren(drawn.node);
  box.dataset.points = drawn.points;
  return drawn;
}

function inRange(rows, xi, range) {
  let kept = rows.filter((r) => r[xi] !== null);
  if (range > 0 && kept.length) {
    const newest = Math.max(...kept.map((r) => r[xi]));
    kept = kept.filter((r) => r[xi] >= newest - range);
  }
  return kept;
}

function yScale(min, max, top, bottom) {
  if (min === max) { min -= 1; max += 1; }
  const pad = (max - min) * 0.05;
  min = min >= 0 ? 0 : min - pad;
  max += pad;
  return { min, max, at: (v) => bottom - ((v - min) / (max - min)) * (bottom - top) };
}

function axes(root, x, y, left, right, top, bottom, xText) {
  const g = svg('g', { class: 'axis' });
  for (let i = 0; i <= 4; i++) {
    const v = y.min + ((y.max - y.min) * i) / 4;
    const py = y.at(v);
    g.append(svg('line', { x1: left, x2: right, y1: py, y2: py }));
    g.append(svg('text', { x: left - 6, y: py + 4, 'text-anchor': 'end' }, number(Math.round(v * 100) / 100)));
  }
  if (x) {
    for (let i = 0; i <= 4; i++) {
      const v = x.min + ((x.max - x.min) * i) / 4;
      g.append(svg('text', { x: x.at(v), y: bottom + 16, 'text-anchor': 'middle' }, xText(v)));
    }
  }
  root.append(g);
}

function lineChart(rows, xi, yi, si, chart, range) {
  const kept = inRange(rows, xi, range).filter((r) => r[yi] !== null);
  const groups = new Map();
  for (const r of kept) {
    const key = si >= 0 ? String(r[si]) : chart.y;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push([r[xi], r[yi]]);
  }
  // The ten series with the most in them are drawn.
  const series = [...groups.entries()]
    .map(([name, points]) => ({ name, points: points.sort((a, b) => a[0] - b[0]), total: points.reduce((s, p) => s + Math.abs(p[1]), 0) }))
    .sort((a, b) => b.total - a.total);
  const shown = series.slice(0, 10).sort((a, b) => (a.name < b.name ? -1 : 1));
  const W = 960, H = 340, left = 70, right = W - 170, top = 12, bottom = H - 28;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'line-chart' });
  const xs = shown.flatMap((s) => s.points.map((p) => p[0]));
  const ys = shown.flatMap((s) => s.points.map((p) => p[1]));
  if (!xs.length) return { node: el('p', { class: 'muted', text: 'No rows in this range yet.' }), points: 0 };
  let [xmin, xmax] = [Math.min(...xs), Math.max(...xs)];
  if (xmin === xmax) { xmin -= 500; xmax += 500; }
  const x = { min: xmin, max: xmax, at: (v) => left + ((v - xmin) / (xmax - xmin)) * (right - left) };
  const y = yScale(Math.min(...ys), Math.max(...ys), top, bottom);
  axes(root, x, y, left, right, top, bottom, clockText);
  let points = 0;
  shown.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const path = s.points.map((p, j) => `${j ? 'L' : 'M'}${x.at(p[0]).toFixed(1)},${y.at(p[1]).toFixed(1)}`).join(' ');
    if (chart.kind === 'area' && s.points.length) {
      const base = y.at(Math.max(y.min, 0));
      const first = s.points[0], last = s.points[s.points.length - 1];
      root.append(svg('path', { d: `${path} L${x.at(last[0])},${base} L${x.at(first[0])},${base} Z`, fill: colour, 'fill-opacity': 0.18, stroke: 'none' }));
    }
    root.append(svg('path', { d: path, fill: 'none', stroke: colour, 'stroke-width': 1.8, 'data-series': s.name }));
    for (const p of s.points) {
      const dot = svg('circle', { class: 'point', cx: x.at(p[0]).toFixed(1), cy: y.at(p[1]).toFixed(1), r: 2.4, fill: colour });
      dot.append(svg('title', {}, `${s.name} · ${timeText(p[0])} · ${number(p[1])}`));
      root.append(dot);
      points++;
    }
    const legend = svg('g', { class: 'legend' });
    legend.append(svg('rect', { x: right + 14, y: top + i * 18, width: 10, height: 10, fill: colour }));
    legend.append(svg('text', { x: right + 30, y: top + i * 18 + 9 }, s.name.length > 18 ? s.name.slice(0, 17) + '…' : s.name));
    root.append(legend);
  });
  const note = series.length > shown.length ? `the ${shown.length} largest of ${series.length} series are drawn` : '';
  return { node: root, points, note };
}

function barChart(rows, xi, yi) {
  // The newest row of each category: an updating aggregate has one per key already.
  const latest = new Map();
  for (const r of rows) if (r[yi] !== null && xi >= 0) latest.set(String(r[xi]), r[yi]);
  const bars = [...latest.entries()].sort((a, b) => b[1] - a[1]);
  const shown = bars.slice(0, 25);
  if (!shown.length) return { node: el('p', { class: 'muted', text: 'No rows yet.' }), points: 0 };
  const W = 960, row = 22, left = 170, right = W - 90, top = 8;
  const H = top + shown.length * row + 24;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'bar-chart' });
  const max = Math.max(...shown.map((b) => b[1]), 0);
  const min = Math.min(...shown.map((b) => b[1]), 0);
  const at = (v) => left + ((v - min) / ((max - min) || 1)) * (right - left);
  shown.forEach(([name, value], i) => {
    const yTop = top + i * row;
    root.append(svg('text', { x: left - 8, y: yTop + 15, 'text-anchor': 'end', 'font-size': 12 }, name.length > 24 ? name.slice(0, 23) + '…' : name));
    const bar = svg('rect', { class: 'point', x: Math.min(at(0), at(value)), y: yTop + 3, width: Math.max(1, Math.abs(at(value) - at(0))), height: row - 6, fill: COLOURS[0] });
    bar.append(svg('title', {}, `${name} · ${number(value)}`));
    root.append(bar);
    root.append(svg('text', { x: Math.max(at(0), at(value)) + 6, y: yTop + 15, 'font-size': 12 }, number(value)));
  });
  const note = bars.length > shown.length ? `the ${shown.length} largest of ${bars.length} are drawn` : '';
  return { node: root, points: shown.length, note };
}

function valueChart(rows, xi, yi, chart, range) {
  let kept = rows.filter((r) => r[yi] !== null);
  if (xi >= 0) kept = inRange(kept, xi, range).sort((a, b) => a[xi] - b[xi]);
  if (!kept.length) return { node: el('p', { class: 'muted', text: 'No rows yet.' }), points: 0 };
  const history = kept.slice(-200);
  const W = 960, H = 200, left = 330, right = W - 20, top = 20, bottom = H - 24;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'value-chart' });
  const latest = history[history.length - 1];
  root.append(svg('text', { class: 'big', x: 20, y: 100 }, number(latest[yi])));
  root.append(svg('text', { x: 22, y: 130, fill: '#6b7385' }, chart.y + (xi >= 0 ? ' at ' + timeText(latest[xi]) : '')));
  const ys = history.map((r) => r[yi]);
  const y = yScale(Math.min(...ys), Math.max(...ys), top, bottom);
  const xAt = (i) => left + (history.length > 1 ? (i / (history.length - 1)) * (right - left) : (right - left) / 2);
  const path = history.map((r, i) => `${i ? 'L' : 'M'}${xAt(i).toFixed(1)},${y.at(r[yi]).toFixed(1)}`).join(' ');
  root.append(svg('path', { d: path, fill: 'none', stroke: COLOURS[0], 'stroke-width': 1.8 }));
  history.forEach((r, i) => root.append(svg('circle', { class: 'point', cx: xAt(i).toFixed(1), cy: y.at(r[yi]).toFixed(1), r: 1.6, fill: COLOURS[0] })));
  return { node: root, points: history.length, note: '' };
}

function rowsTable(columns, rows) {
  const head = el('tr', {}, ...columns.map((c) => el('th', { title: c.type, text: c.name })));
  const body = rows.map((r) => el('tr', {}, ...columns.map((c, i) => el('td', { class: c.kind === 'number' ? 'num' : '', text: cellText(r[i], c.kind) }))));
  return el('table', {}, el('thead', {}, head), el('tbody', {}, ...body));
}

// --- query --------------------------------------------------------------------------------

async function runQuery() {
  const sql = $('query-text').value;
  $('query-note').textContent = 'running…';
  const started = performance.now();
  const answer = await fetch(api('/api/query'), { method: 'POST', body: sql, headers: { 'Content-Type': 'text/plain' } });
  const data = await answer.json();
  if (!answer.ok) {
    $('query-note').textContent = '';
    $('query-chart').replaceChildren();
    $('query-result').replaceChildren(el('p', { class: 'error', text: data.error }));
    return;
  }
  const ms = Math.round(performance.now() - started);
  $('query-note').textContent = `${thousands(data.total_rows)} rows in ${ms} ms` + (data.rows.length < data.total_rows ? `, the first ${thousands(data.rows.length)} shown` : '');
  // A chart that suits the result: a line over its time column, else a bar per text value.
  const has = (kind) => data.columns.some((c) => c.kind === kind);
  const kind = has('number') ? (has('time') ? 'line' : has('text') ? 'bar' : data.rows.length === 1 ? 'value' : 'table') : 'table';
  const chart = chooseChart({ kind }, data.columns);
  drawChart($('query-chart'), data.columns, data.rows, chart, 0);
  $('query-result').replaceChildren(rowsTable(data.columns, data.rows));
}

// --- start --------------------------------------------------------------------------------

$('chart-kind').addEventListener('change', drawLive);
$('chart-range').addEventListener('change', drawLive);
$('row-cap').addEventListener('change', () => { const name = view.table; openTable(null); openTable(name); });
$('query-run').addEventListener('click', runQuery);
$('query-text').addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runQuery(); } });
$('query-text').value = 'SELECT * FROM ';
window.addEventListener('hashchange', route);
watchPipelines();
refreshTables().then(route);
route();
