"""The page `sandbox report` writes: one HTML file, its CSS, script and data inline.

Nothing is fetched (no network, no fonts): the data is a JSON blob in
`<script type="application/json" id="data">` (tests read it), and the script draws the rest
from it when the page loads: the summary, the fault timeline (an SVG, one mark per fault,
its address, rip and kind in a hover title), the frames shared between processes, and for
each process its regions and its page-table tree as nested `<details>` (a table's entries
are drawn the first time it is opened; the PML4 level opens at load). Every guest-chosen
string (file names, the program's arguments) reaches the page as text, never as markup.
Kept apart from sandbox/report.py as a Python string, so that it is packaged with the code.
"""

from __future__ import annotations

import html
import json
import re

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em 2em; color: #222; background: #fff; }
h1 { font-size: 1.5em; margin: 0 0 .2em; } h2 { font-size: 1.2em; margin: 1.4em 0 .4em; }
h3 { font-size: 1em; margin: 1em 0 .3em; }
code, .mono, td.mono, .tree { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
#summary { font-size: 1.1em; background: #eef4fb; border-left: 4px solid #1f77b4; padding: .4em .8em; }
.cap { color: #8a4b00; background: #fff4e0; padding: .2em .6em; margin: .2em 0; }
table { border-collapse: collapse; margin: .3em 0; }
th, td { border: 1px solid #ccd; padding: .15em .5em; text-align: left; vertical-align: top; }
th { background: #f0f0f5; position: sticky; top: 0; }
.scroll { max-height: 24em; overflow-y: auto; display: inline-block; border: 1px solid #ccd; }
td.num { text-align: right; }
.process { border-top: 2px solid #ccd; margin-top: 1.5em; }
.tree details { margin-left: 1.2em; } .tree > details { margin-left: 0; }
.tree summary { cursor: pointer; white-space: nowrap; } .tree .leaf { margin-left: 2.4em; white-space: nowrap; }
.tree .more { margin-left: 2.4em; color: #8a4b00; }
.bit { display: inline-block; padding: 0 .25em; margin-right: .15em; border-radius: 3px; background: #e4e8ee; }
.bit-RW { background: #fde2e1; } .bit-US { background: #e0f1e0; } .bit-NX { background: #eee0f5; }
.bit-D { background: #fff0c8; } .bit-A { background: #e1ecfa; } .bit-PS { background: #ffd9b3; }
.lv { font-weight: bold; } .va { color: #1a5a96; } .pfn { color: #7a3e9d; }
.legend span { display: inline-block; margin-right: 1.2em; } .swatch { display: inline-block; width: .9em;
  height: .9em; margin-right: .3em; vertical-align: -.1em; border-radius: 2px; }
#timeline svg text { font: 11px ui-monospace, "DejaVu Sans Mono", monospace; fill: #333; }
"""

_SCRIPT = r"""
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = {"demand-zero": "#1f77b4", "file": "#2ca02c", "copy-on-write": "#d62728",
                 "cow-reuse": "#ff7f0e", "spurious": "#7f7f7f"};
const SPARE = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
const BITS = {P: "present", RW: "writable", US: "user-accessible", PWT: "write-through", PCD: "cache disabled",
              A: "accessed", D: "dirty", PS: "page size: maps a large page", G: "global", NX: "no execute"};
const CHILD = {PML4: "PDPT", PDPT: "PD", PD: "PT"};

function hex(n) { return n === null || n === undefined ? "-" : "0x" + n.toString(16); }
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  node.append(...children);
  return node;
}
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1 && bytes % 1024 === 0) { bytes /= 1024; i++; }
  return bytes + " " + units[i];
}
function plural(n, word) { return n + " " + word + (n === 1 ? "" : (word.endsWith("s") ? "es" : "s")); }
function colour(kind) {
  if (!(kind in COLOURS)) COLOURS[kind] = SPARE[Object.keys(COLOURS).length % SPARE.length];
  return COLOURS[kind];
}

function fillSummary() {
  const processes = data.processes.length + data.capped.processes;
  const summary = document.getElementById("summary");
  summary.textContent = `${data.argv.join(" ")}: ${data.ended}. ${plural(processes, "process")}, ` +
    `${plural(data.faults_total, "page fault")}, ${plural(data.shared.length, "frame")} shared between processes.`;
  summary.dataset.processes = processes;
  summary.dataset.faults = data.faults_total;
  summary.dataset.shared = data.shared.length;
  const caps = document.getElementById("caps");
  const c = data.capped, l = data.limits;
  const notes = [];
  if (c.rows) notes.push(`The timeline has ${l.rows} rows; faults in further regions share a row per process.`);
  if (c.faults) notes.push(`The timeline shows the first ${l.faults} of ${data.faults_total} faults.`);
  if (c.tree) notes.push(`The page-table trees show at most ${l.tree_each} entries each and ${l.tree} in all; ` +
                         "the rest are counted, not shown.");
  if (c.processes) notes.push(`${c.processes} more processes ran; the first ${l.processes} are shown.`);
  if (c.regions) notes.push(`Region lists stop at ${l.regions} regions per process.`);
  if (c.shared) notes.push(`The shared-frame table stops at ${l.shared} frames and ${l.sharers} processes ` +
                           "a frame, and its search at a limit of page-table reads.");
  for (const note of notes) caps.append(el("p", {class: "cap"}, "Capped: " + note));
}

function drawTimeline() {
  const box = document.getElementById("timeline");
  const legend = document.getElementById("legend");
  for (const [kind, n] of Object.entries(data.fault_counts)) {
    legend.append(el("span", {}, el("span", {class: "swatch", style: `background:${colour(kind)}`}), `${kind} ${n}`));
  }
  if (!data.faults.length) { box.append("No page faults."); return; }
  const ROW = 18, LEFT = 300, RIGHT = 20, TOP = 10, width = 1100;
  const height = TOP + data.rows.length * ROW + 40, plot = width - LEFT - RIGHT;
  const first = data.faults[0][0], last = data.faults[data.faults.length - 1][0];
  const x = (n) => LEFT + (last === first ? plot / 2 : (n - first) / (last - first) * plot);
  const picture = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img"});
  picture.append(svg("title", {}, "Page faults: fault number (across) against region (down)"));
  data.rows.forEach((row, i) => {
    const y = TOP + i * ROW;
    if (i % 2 === 0) picture.append(svg("rect", {x: LEFT, y, width: plot, height: ROW, fill: "#f5f6fa"}));
    picture.append(svg("text", {x: LEFT - 6, y: y + ROW - 5, "text-anchor": "end"},
                       `pid ${row.pid} ${row.label}`.slice(-44)));
  });
  for (const [n, row, va, rip, kind, access] of data.faults) {
    const name = data.kinds[kind];
    const mark = svg("rect", {x: x(n) - 1, y: TOP + row * ROW + 3, width: 3, height: ROW - 6, fill: colour(name)});
    mark.append(svg("title", {}, `fault ${n}, pid ${data.rows[row].pid}: ${name} (${access}) at ${hex(va)}, ` +
                    `rip ${rip === null ? "- (the kernel's access)" : hex(rip)}`));
    picture.append(mark);
  }
  const axis = TOP + data.rows.length * ROW;
  picture.append(svg("line", {x1: LEFT, y1: axis, x2: LEFT + plot, y2: axis, stroke: "#333"}));
  for (let t = 0; t <= 4; t++) {
    const n = Math.round(first + (last - first) * t / 4);
    picture.append(svg("text", {x: x(n), y: axis + 15, "text-anchor": "middle"}, String(n)));
  }
  picture.append(svg("text", {x: LEFT + plot / 2, y: axis + 32, "text-anchor": "middle"}, "fault number"));
  box.append(picture);
}

function drawShared() {
  const box = document.getElementById("shared");
  const kinds = Object.entries(data.shared_by_kind).map(([k, n]) => `${n} ${k}`).join(", ");
  box.append(el("p", {id: "shared-count"}, `${plural(data.shared.length, "frame")} mapped by more than one ` +
    `process${kinds ? " (" + kinds + ")" : ""}, found at each process's end among those still running.`));
  if (!data.shared.length) return;
  const pids = [...new Set(data.shared.flatMap((frame) => frame.maps.map((m) => m.pid)))].sort((a, b) => a - b);
  const columns = pids.length <= 8;  // a column per process, or one column listing them
  const heads = columns ? pids.map((pid) => `va in pid ${pid}`) : ["pid: va"];
  const table = el("table", {id: "shared-table"}, el("tr", {}, ...["pfn", "kind", ...heads, "region"]
    .map((h) => el("th", {}, h))));
  for (const frame of data.shared) {
    const at = Object.fromEntries(frame.maps.map((m) => [m.pid, `${hex(m.va)} ${m.writable ? "rw" : "ro"}`]));
    const cells = columns ? pids.map((pid) => at[pid] || "")
                          : [frame.maps.map((m) => `${m.pid}: ${at[m.pid]}`).join(", ")];
    table.append(el("tr", {}, el("td", {class: "mono"}, hex(frame.pfn)), el("td", {}, frame.kind),
      ...cells.map((text) => el("td", {class: "mono"}, text)),
      el("td", {class: "mono"}, frame.maps[0].region)));
  }
  box.append(el("div", {class: "scroll"}, table));
}

function regionTable(p) {
  const table = el("table", {}, el("tr", {}, ...["start-end", "size", "perms", "resident pages", "name"]
    .map((h) => el("th", {}, h))));
  for (const r of p.regions) {
    table.append(el("tr", {}, el("td", {class: "mono"}, `${hex(r.start)}-${hex(r.end)}`),
      el("td", {class: "num"}, size(r.end - r.start)), el("td", {class: "mono"}, r.perms),
      el("td", {class: "num"}, String(r.resident)), el("td", {class: "mono"}, r.name)));
  }
  return table;
}

function entryLabel(node) {
  const span = el("span", {class: "entry", title: `entry ${node.e}`});
  const index = node.n > 1 ? `[${node.i}..${node.i + node.n - 1}]` : `[${node.i}]`;
  span.append(el("span", {class: "lv"}, node.lv + index), " ");
  for (const bit of node.bits.split(" ")) {
    span.append(el("span", {class: "bit bit-" + bit, title: BITS[bit] || bit}, bit));
  }
  const range = el("span", {class: "va"}, ` va ${hex(node.va)}-${hex(node.end)}`);
  if (node.page) {
    const pages = plural(node.n, node.page === "2M" ? "2 MiB page" : "page");
    const frames = node.n > 1 ? `pfn ${hex(node.pfn)}..${hex(node.pfn + (node.page === "2M" ? 512 : 1) * (node.n - 1))}`
                              : `pfn ${hex(node.pfn)}`;
    span.append(` ${pages}`, range, " ", el("span", {class: "pfn"}, frames));
  } else {
    span.append(` \u2192 ${CHILD[node.lv]} `, el("span", {class: "pfn"}, `pfn ${hex(node.pfn)}`), range);
  }
  return span;
}

function treeNodes(parent, nodes, open) {
  for (const node of nodes) {
    if (node.more !== undefined) {
      parent.append(el("div", {class: "more"}, `\u2026 ${plural(node.more, "more entry")} not shown (capped)`));
    } else if (node.c) {
      const details = el("details", {}, el("summary", {}, entryLabel(node)));
      let drawn = false;
      const draw = () => { if (!drawn) { drawn = true; treeNodes(details, node.c, false); } };
      details.addEventListener("toggle", draw);
      if (open) { draw(); details.open = true; }
      parent.append(details);
    } else {
      parent.append(el("div", {class: "leaf"}, entryLabel(node)));
    }
  }
}

function drawProcess(p, index) {
  const section = el("section", {class: "process", id: `process-${index}`});
  section.append(el("h2", {}, `pid ${p.pid}: ${p.exe}`),
    el("p", {}, `${p.ended}; parent ${p.ppid}. ${p.resident} pages resident in ${plural(p.regions_total, "region")}, ` +
                `${p.table_pages} page-table pages, CR3 ${hex(p.cr3)}.`),
    el("h3", {}, "Regions"), regionTable(p), el("h3", {}, "Page tables"));
  const tree = el("div", {class: "tree"});
  tree.append(el("div", {}, `PML4 @ ${hex(p.tree.root)} (CR3): user half`));
  treeNodes(tree, p.tree.nodes, true);
  tree.append(el("div", {class: "leaf"}, `PML4[256..511]: kernel half, ${p.tree.kernel_entries} present ` +
                                         "(supervisor-only, shared with every process)"));
  section.append(tree);
  return section;
}

function main() {
  document.getElementById("prog").textContent = data.argv.join(" ");
  fillSummary();
  drawTimeline();
  drawShared();
  const box = document.getElementById("processes");
  const toc = document.getElementById("toc");
  data.processes.forEach((p, i) => {
    box.append(drawProcess(p, i));
    toc.append(el("a", {href: `#process-${i}`}, `pid ${p.pid} (${p.event})`), " ");
  });
  document.body.dataset.rendered = "yes";
}
main();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sandbox report: @TITLE@</title>
<style>@STYLE@</style>
</head>
<body>
<h1>Address space of <code id="prog">@TITLE@</code></h1>
<p id="summary">This page draws itself with JavaScript; the data is in the script element "data".</p>
<div id="caps"></div>
<p id="toc">Processes: </p>
<h2>Fault timeline</h2>
<div id="legend" class="legend"></div>
<div id="timeline"></div>
<h2>Frames shared between processes</h2>
<div id="shared"></div>
<div id="processes"></div>
<script type="application/json" id="data">@DATA@</script>
<script>@SCRIPT@</script>
</body>
</html>
"""

_SLOT = re.compile(r"@(TITLE|STYLE|DATA|SCRIPT)@")


def dumps(data: dict) -> str:
    """The data as compact JSON, safe inside a <script> element (no '<' in it at all)."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


def render(data: dict) -> str:
    """The whole page for the data `sandbox.report.Recorder.data` made."""
    slots = {"TITLE": html.escape(" ".join(data["argv"])), "STYLE": _STYLE, "DATA": dumps(data), "SCRIPT": _SCRIPT}
    return _SLOT.sub(lambda match: slots[match.group(1)], _PAGE)
