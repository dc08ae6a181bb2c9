// The dashboard page: polls /api/graph and /api/config and draws them.
// Plain DOM and SVG, no libraries: the page is served from the binary.
"use strict";

const REFRESH_MS = 2500;
const SVG = "http://www.w3.org/2000/svg";

// Layout sizes, in SVG units.
const NODE_W = 150;
const NODE_H = 34;
const BOX_PAD = 12;
const BOX_HEAD = 26;
const NODE_GAP = 10;
const COLUMN_GAP = 190;
const ROW_GAP = 36;
const MARGIN = 24;

function element(name, attributes, parent) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value !== undefined) el.setAttribute(key, value);
  }
  if (parent) parent.appendChild(el);
  return el;
}

function html(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

// --- Layout -----------------------------------------------------------------

// Workloads of one app share a box; gateways, services without a proxy and
// unknown peers stand alone.
function groupOf(node) {
  return node.kind === "workload" ? `app:${node.namespace}/${node.app}` : `node:${node.id}`;
}

function groups(graph) {
  const byId = new Map();
  for (const node of graph.nodes) {
    const id = groupOf(node);
    if (!byId.has(id)) {
      byId.set(id, { id, boxed: node.kind === "workload", app: node.app, namespace: node.namespace, nodes: [] });
    }
    byId.get(id).nodes.push(node);
  }
  for (const group of byId.values()) {
    group.nodes.sort((a, b) => a.version.localeCompare(b.version) || a.name.localeCompare(b.name));
  }
  return byId;
}

// Each group's column: the longest chain of calls leading to it, so callers
// stand left of whom they call. Bounded passes keep cycles finite.
function layers(groupsById, graph, nodeGroup) {
  const layer = new Map([...groupsById.keys()].map((id) => [id, 0]));
  const links = graph.edges
    .map((e) => [nodeGroup.get(e.source), nodeGroup.get(e.destination)])
    .filter(([s, d]) => s && d && s !== d);
  for (let pass = 0; pass < groupsById.size; pass++) {
    let changed = false;
    for (const [s, d] of links) {
      if (layer.get(d) < layer.get(s) + 1) {
        layer.set(d, layer.get(s) + 1);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return layer;
}

function groupHeight(group) {
  const n = group.nodes.length;
  const inner = n * NODE_H + (n - 1) * NODE_GAP;
  return group.boxed ? inner + BOX_HEAD + BOX_PAD : inner;
}

// Places groups in columns; within a column, by the mean row of their
// callers, then by name, so the same graph always looks the same.
function layout(graph) {
  const groupsById = groups(graph);
  const nodeGroup = new Map(graph.nodes.map((n) => [n.id, groupOf(n)]));
  const layer = layers(groupsById, graph, nodeGroup);
  const columns = [];
  for (const group of groupsById.values()) {
    const l = layer.get(group.id);
    (columns[l] = columns[l] || []).push(group);
  }
  const callers = new Map();
  for (const e of graph.edges) {
    const d = nodeGroup.get(e.destination);
    if (!callers.has(d)) callers.set(d, []);
    callers.get(d).push(nodeGroup.get(e.source));
  }
  const position = new Map();
  const nodes = new Map();
  let width = 0;
  let height = 0;
  columns.forEach((column, index) => {
    const rank = (g) => {
      const ys = (callers.get(g.id) || []).map((c) => position.get(c)).filter((p) => p !== undefined);
      return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : Infinity;
    };
    column.sort((a, b) => rank(a) - rank(b) || a.id.localeCompare(b.id));
    const x = MARGIN + index * (NODE_W + 2 * BOX_PAD + COLUMN_GAP);
    let y = MARGIN;
    column.forEach((group, row) => {
      position.set(group.id, row);
      group.x = x;
      group.y = y;
      group.w = NODE_W + (group.boxed ? 2 * BOX_PAD : 0);
      group.h = groupHeight(group);
      let ny = group.boxed ? y + BOX_HEAD : y;
      const nx = group.boxed ? x + BOX_PAD : x;
      for (const node of group.nodes) {
        nodes.set(node.id, { x: nx, y: ny, node });
        ny += NODE_H + NODE_GAP;
      }
      y += group.h + ROW_GAP;
      width = Math.max(width, x + group.w + MARGIN);
      height = Math.max(height, y - ROW_GAP + MARGIN);
    });
  });
  return { groups: [...groupsById.values()], nodes, width, height };
}

// --- Formatting -------------------------------------------------------------

function rate(value) {
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function percent(share) {
  if (share === 0) return "0%";
  if (share < 0.001) return "<0.1%";
  return `${(share * 100).toFixed(share < 0.1 ? 1 : 0)}%`;
}

function millis(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)}s` : `${ms.toFixed(ms < 10 ? 1 : 0)}ms`;
}

function bytes(perSecond) {
  if (perSecond >= 1 << 20) return `${(perSecond / (1 << 20)).toFixed(1)} MiB/s`;
  if (perSecond >= 1 << 10) return `${(perSecond / (1 << 10)).toFixed(1)} KiB/s`;
  return `${perSecond.toFixed(0)} B/s`;
}

function edgeLabel(edge) {
  if (edge.protocol === "tcp") {
    const failed = edge.error_rate > 0 ? ` · ${percent(edge.error_rate)} failed` : "";
    return `${rate(edge.rate)} conn/s${failed} · ${bytes(edge.bytes_per_second || 0)}`;
  }
  const parts = [`${rate(edge.rate)} rps`];
  if (edge.error_rate > 0) parts.push(`${percent(edge.error_rate)} 5xx`);
  if (edge.p99_ms !== null && edge.p99_ms !== undefined) parts.push(`p99 ${millis(edge.p99_ms)}`);
  return parts.join(" · ");
}

// --- Drawing ----------------------------------------------------------------

function drawGroups(placed, parent) {
  for (const group of placed.groups.filter((g) => g.boxed)) {
    const box = element("g", { class: "app", "data-app": group.app, "data-namespace": group.namespace }, parent);
    element("rect", { x: group.x, y: group.y, width: group.w, height: group.h, rx: 10, class: "app-box" }, box);
    const title = element("text", { x: group.x + BOX_PAD, y: group.y + 17, class: "app-name" }, box);
    title.textContent = group.app;
    const ns = element("text", { x: group.x + group.w - BOX_PAD, y: group.y + 17, class: "app-namespace" }, box);
    ns.textContent = group.namespace;
  }
}

function nodeText(node) {
  if (node.kind === "workload" && node.version && node.version !== "unknown") return node.version;
  return node.name;
}

function drawNodes(placed, parent) {
  for (const { x, y, node } of placed.nodes.values()) {
    const g = element("g", {
      class: `node ${node.kind}${node.scrape_error ? " unreachable" : ""}`,
      "data-node": node.id,
      "data-workload": node.kind === "service" ? undefined : node.name,
      "data-app": node.app,
      "data-version": node.version,
      "data-kind": node.kind,
    }, parent);
    element("rect", { x, y, width: NODE_W, height: NODE_H, rx: node.kind === "gateway" ? 17 : 6, class: "node-shape" }, g);
    const text = nodeText(node);
    // Long names (gateways, services) get a smaller font to fit the node.
    const small = text.length > 16 ? " small" : "";
    const label = element("text", { x: x + NODE_W / 2, y: y + NODE_H / 2 + 4, class: `node-label${small}` }, g);
    label.textContent = text;
    const tip = element("title", {}, g);
    tip.textContent = [
      `${node.kind} ${node.namespace ? node.namespace + "/" : ""}${node.name}`,
      node.app && `app: ${node.app}`,
      node.version && `version: ${node.version}`,
      node.scrape_error && `cannot scrape: ${node.scrape_error}`,
    ].filter(Boolean).join("\n");
  }
}

function edgePath(from, to) {
  const x1 = from.x + NODE_W;
  const y1 = from.y + NODE_H / 2;
  const x2 = to.x;
  const y2 = to.y + NODE_H / 2;
  if (x2 > x1) {
    const bend = (x2 - x1) / 2;
    return { d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`, mid: [(x1 + x2) / 2, (y1 + y2) / 2] };
  }
  // A call back to the left (or within a column) loops below the nodes.
  const under = Math.max(from.y, to.y) + NODE_H + 40;
  return {
    d: `M${x1},${y1} C${x1 + 80},${under} ${x2 - 80},${under} ${x2},${y2}`,
    mid: [(x1 + x2) / 2, under - 10],
  };
}

function drawEdges(graph, placed, parent) {
  for (const edge of graph.edges) {
    const from = placed.nodes.get(edge.source);
    const to = placed.nodes.get(edge.destination);
    if (!from || !to) continue;
    const failing = edge.error_rate > 0;
    const g = element("g", {
      class: `edge${failing ? " error" : ""}`,
      "data-source": edge.source,
      "data-destination": edge.destination,
      "data-protocol": edge.protocol,
      "data-rate": edge.rate.toFixed(3),
      "data-error-rate": edge.error_rate.toFixed(4),
      "data-mtls": String(edge.mtls),
    }, parent);
    const { d, mid } = edgePath(from, to);
    const width = Math.min(5, 1.5 + Math.log10(1 + edge.rate) * 1.5);
    element("path", {
      d,
      class: "edge-line",
      "stroke-width": width.toFixed(2),
      "marker-end": failing ? "url(#arrow-error)" : "url(#arrow)",
    }, g);
    const text = edgeLabel(edge);
    const label = element("g", { class: "edge-label", transform: `translate(${mid[0]},${mid[1]})` }, g);
    const background = element("rect", { y: -9, height: 18, rx: 9, class: "edge-label-bg" }, label);
    const t = element("text", { x: edge.mtls ? 8 : 0, y: 4 }, label);
    t.textContent = text;
    // The label is in the document already, so its text can be measured.
    const labelWidth = t.getComputedTextLength() + (edge.mtls ? 16 : 0) + 14;
    background.setAttribute("x", -labelWidth / 2);
    background.setAttribute("width", labelWidth);
    if (edge.mtls) {
      const lock = element("g", { class: "lock", transform: `translate(${-labelWidth / 2 + 12},0)` }, label);
      element("use", { href: "#lock", x: -6, y: -6, width: 12, height: 12 }, lock);
      element("title", {}, lock).textContent = "mutual TLS";
    }
    element("title", {}, g).textContent =
      `${edge.source} → ${edge.destination} (${edge.protocol}, from the ${edge.reporter}'s proxy)\n${text}`;
  }
}

function drawEmpty(parent, message) {
  const t = element("text", { x: MARGIN, y: MARGIN + 20, class: "empty" }, parent);
  t.textContent = message;
  return { width: 640, height: 120 };
}

function renderGraph(graph) {
  const svg = document.getElementById("graph");
  const old = document.getElementById("graph-content");
  const content = element("g", { id: "graph-content" });
  svg.replaceChild(content, old);
  let size;
  if (!graph.nodes || graph.nodes.length === 0) {
    size = drawEmpty(content, "No proxies yet: the targets file lists none.");
  } else {
    const placed = layout(graph);
    drawGroups(placed, content);
    drawEdges(graph, placed, content);
    drawNodes(placed, content);
    size = placed;
  }
  svg.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);
  svg.setAttribute("width", size.width);
  svg.setAttribute("height", size.height);
}

// --- Status and config ------------------------------------------------------

function renderStatus(graph, configError) {
  const status = document.getElementById("status");
  status.replaceChildren();
  const proxies = (graph.nodes || []).filter((n) => n.proxy);
  const failing = proxies.filter((n) => n.scrape_error);
  const parts = [`${proxies.length} ${proxies.length === 1 ? "proxy" : "proxies"}`];
  parts.push(graph.window_seconds ? `rates over the last ${graph.window_seconds.toFixed(0)} s` : "measuring…");
  if (graph.updated_unix_ms) parts.push(`updated ${new Date(graph.updated_unix_ms).toLocaleTimeString()}`);
  status.appendChild(document.createTextNode(parts.join(" · ")));
  const problems = [];
  if (failing.length) problems.push(`${failing.length} cannot be scraped (${failing.map((n) => n.name).join(", ")})`);
  if (graph.targets_error) problems.push(graph.targets_error);
  if (configError) problems.push("control plane unreachable");
  for (const text of problems) status.appendChild(html("span", "warning", text));
}

function renderProblems(config) {
  const box = document.getElementById("config-problems");
  box.replaceChildren();
  if (config.error) {
    box.appendChild(html("p", "notice unreachable", `Cannot read the config from ${config.control_plane}: ${config.error}`));
  }
  const problems = config.problems || [];
  if (problems.length === 0) {
    if (!config.error) box.appendChild(html("p", "notice ok", "No validation problems reported."));
    return;
  }
  const list = html("div", "notice problems");
  list.appendChild(html("h3", "", `${problems.length} validation problem${problems.length === 1 ? "" : "s"}: left out of the running config`));
  const ul = html("ul");
  for (const problem of problems) {
    const li = html("li", "problem", problem.message);
    if (problem.subject) li.dataset.subject = problem.subject;
    ul.appendChild(li);
  }
  list.appendChild(ul);
  box.appendChild(list);
}

function renderConfig(config) {
  renderProblems(config);
  const box = document.getElementById("config");
  box.replaceChildren();
  const byKind = new Map();
  for (const r of config.resources || []) {
    if (!byKind.has(r.kind)) byKind.set(r.kind, []);
    byKind.get(r.kind).push(r);
  }
  if (byKind.size === 0 && !config.error) {
    box.appendChild(html("p", "muted", "No Istio config applied."));
  }
  for (const [kind, resources] of byKind) {
    const section = html("section", "kind");
    section.dataset.kind = kind;
    section.appendChild(html("h3", "", `${kind} (${resources.length})`));
    const ul = html("ul");
    for (const r of resources) {
      const li = html("li", `resource${r.problems.length ? " invalid" : ""}`);
      Object.assign(li.dataset, { kind: r.kind, namespace: r.namespace, name: r.name });
      const name = html("div", "resource-name");
      name.appendChild(html("span", "namespace", `${r.namespace}/`));
      name.appendChild(html("span", "", r.name));
      li.appendChild(name);
      if (r.hosts.length) {
        const hosts = html("div", "hosts");
        for (const h of r.hosts) hosts.appendChild(html("span", "host", h));
        li.appendChild(hosts);
      }
      for (const p of r.problems) li.appendChild(html("div", "resource-problem", p));
      ul.appendChild(li);
    }
    section.appendChild(ul);
    box.appendChild(section);
  }
}

// --- Polling ----------------------------------------------------------------

let configError = false;

async function fetchJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

async function refresh() {
  const [graph, config] = await Promise.allSettled([fetchJson("/api/graph"), fetchJson("/api/config")]);
  if (config.status === "fulfilled" && config.value.control_plane) {
    configError = Boolean(config.value.error);
    renderConfig(config.value);
  }
  if (graph.status === "fulfilled") {
    renderGraph(graph.value);
    renderStatus(graph.value, configError);
  } else {
    document.getElementById("status").textContent = "The dashboard server does not answer.";
  }
}

async function loop() {
  try {
    await refresh();
  } finally {
    setTimeout(loop, REFRESH_MS);
  }
}

loop();
