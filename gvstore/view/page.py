"""The viewer's page: one HTML file with its CSS and JS inline (no server, no network).

The bundle puts two things into it: ``{{DATA}}``, the prompt index as a call
``gvIndex(<JSON>)``, and the page's title. Each prompt's samples come from ``p/<n>.js``, a
call ``gvPrompt(<JSON>)`` loaded with a script element (browsers refuse ``fetch`` of
``file://``). The script inserts every text from data with ``textContent`` or as a text node,
never as HTML. The address's fragment may name a starting state: ``#prompt=N&group=G``
``&sort=gap|acc|disagree&keep=all|kept|rejected&correct=all|correct|wrong&q=TEXT``;
``click=N`` clicks prompt N's row of the list (what the browser test uses).
"""

from __future__ import annotations

CSS = """
body{font:14px system-ui,sans-serif;margin:1em 2em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f2f2f2}
tr.pick{cursor:pointer} tr.pick:hover{background:#eef}
pre{white-space:pre-wrap;word-break:break-word;margin:0;max-width:70em}
.kept{background:#e8f6e8} .rejected{background:#fbeaea}
.bar button,.bar select,.bar input{margin-right:.5em}
.bar button.on{font-weight:bold;background:#dde}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figure img{max-width:min(100%,60em);border:1px solid #ddd}
"""

SCRIPT = r"""
"use strict";
var GV = {index: null, prompts: {}, group: 0, sort: "gap", show: null};
function el(tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function num(x) { return (x === null || x === undefined) ? "-" : Number(x).toFixed(3); }
function row(cells, head) {
  var tr = el("tr");
  cells.forEach(function (c) { tr.appendChild(el(head ? "th" : "td", c)); });
  return tr;
}
function gvIndex(data) { GV.index = data; }
function gvPrompt(data) { GV.prompts[data.n] = data; if (GV.show === data.n) showPrompt(data.n); }
function overview() {
  var box = document.getElementById("overview"), t = el("table");
  t.id = "gap-table";
  t.appendChild(row(["task", "generator", "round", "verifier", "spec", "prompts", "base",
                     "reweighted", "gap", "gap interval", "verdict"], true));
  GV.index.overview.forEach(function (r) {
    t.appendChild(row([r.task, r.generator, r.round, r.verifier, r.spec, r.prompts,
      num(r.base), num(r.reweighted), num(r.gap),
      "[" + num(r.gap_lo) + ", " + num(r.gap_hi) + "]", r.verdict]));
  });
  box.appendChild(t);
  var sel = document.getElementById("group");
  GV.index.groups.forEach(function (g, i) {
    var o = el("option", g.task + " / " + g.generator + " / round " + g.round + " / " +
               g.verifier);
    o.value = String(i); sel.appendChild(o);
  });
  sel.onchange = function () { GV.group = Number(sel.value); promptList(); };
}
function plots() {
  var box = document.getElementById("plots");
  (GV.index.plots || []).forEach(function (p) {
    var fig = el("figure"), img = document.createElement("img");
    img.src = p.file; img.alt = p.title;
    fig.appendChild(img); fig.appendChild(el("figcaption", p.title)); box.appendChild(fig);
  });
  if (!box.firstChild) box.appendChild(el("p", "No plots in this bundle."));
}
function promptList() {
  var g = GV.index.groups[GV.group], q = document.getElementById("search").value.toLowerCase();
  var ps = g.prompts.filter(function (p) {
    return !q || (p.id + " " + p.snippet).toLowerCase().indexOf(q) >= 0;
  });
  var k = GV.sort, sign = (k === "acc") ? 1 : -1;
  ps.sort(function (a, b) {
    var x = a[k] === null ? -Infinity : a[k], y = b[k] === null ? -Infinity : b[k];
    return x === y ? a.n - b.n : (x < y ? -sign : sign);
  });
  document.querySelectorAll("button[data-sort]").forEach(function (b) {
    b.className = b.getAttribute("data-sort") === k ? "on" : "";
  });
  var t = el("table"), box = document.getElementById("prompts");
  t.id = "prompt-table";
  t.appendChild(row(["#", "prompt", "accuracy", "reweighted", "gap", "disagreement",
                     "kept / samples"], true));
  ps.forEach(function (p) {
    var tr = row([p.n, p.snippet, num(p.acc), num(p.acc_w), num(p.gap), num(p.disagree),
                  p.kept + " / " + p.samples]);
    tr.className = "pick"; tr.onclick = function () { openPrompt(p.n); };
    t.appendChild(tr);
  });
  box.replaceChildren(t);
}
function openPrompt(n) {
  GV.show = n;
  if (GV.prompts[n]) { showPrompt(n); return; }
  var s = document.createElement("script");
  s.src = "p/" + Number(n) + ".js";
  document.body.appendChild(s);
}
function keep(s) {
  var f = document.getElementById("fkeep").value, c = document.getElementById("fcorrect").value;
  var q = document.getElementById("search").value.toLowerCase();
  if (f === "kept" && !s.kept) return false;
  if (f === "rejected" && s.kept) return false;
  if (c === "correct" && s.strict !== 1) return false;
  if (c === "wrong" && s.strict !== 0) return false;
  return !q || String(s.text).toLowerCase().indexOf(q) >= 0 ||
    String(s.extracted).toLowerCase().indexOf(q) >= 0;
}
function showPrompt(n) {
  var d = GV.prompts[n], box = document.getElementById("samples");
  box.replaceChildren();
  box.appendChild(el("h2", "Prompt " + d.n + " (" + d.task + " / " + d.generator + " / " +
                           d.verifier + ")"));
  box.appendChild(el("div", d.id));
  box.appendChild(el("pre", d.text));
  box.appendChild(el("p", "Kept by " + d.spec + " (weight > 0)."));
  var t = el("table"), methods = {};
  t.id = "sample-table";
  d.samples.forEach(function (s) {
    Object.keys(s.methods).forEach(function (m) { methods[m] = 1; });
  });
  var ms = Object.keys(methods).sort();
  var head = ["sample", "strict", "flexible", "extracted", "weight", "kept"];
  ms.forEach(function (m) { head.push(m + " score"); head.push(m + " raw"); });
  head.push("text");
  t.appendChild(row(head, true));
  d.samples.filter(keep).forEach(function (s) {
    var cells = [s.index, num(s.strict), num(s.flexible), s.extracted === null ? "-" : s.extracted,
                 num(s.weight), s.kept ? "kept" : "rejected"];
    ms.forEach(function (m) {
      var v = s.methods[m]; cells.push(v ? num(v.score) : "-"); cells.push(v ? v.raw : "");
    });
    var tr = row(cells), td = el("td");
    td.appendChild(el("pre", s.text));
    tr.appendChild(td);
    tr.className = s.kept ? "kept" : "rejected";
    t.appendChild(tr);
  });
  box.appendChild(t);
}
function fromHash() {
  var h = new URLSearchParams(window.location.hash.slice(1));
  if (h.get("sort")) GV.sort = h.get("sort");
  if (h.get("group")) GV.group = Number(h.get("group"));
  ["fkeep:keep", "fcorrect:correct", "search:q"].forEach(function (pair) {
    var kv = pair.split(":"), v = h.get(kv[1]);
    if (v !== null) document.getElementById(kv[0]).value = v;
  });
  return h.get("prompt");
}
function start() {
  document.getElementById("spec").textContent = GV.index.spec;
  var p = fromHash();
  overview(); plots(); document.getElementById("group").value = String(GV.group); promptList();
  document.querySelectorAll("button[data-sort]").forEach(function (b) {
    b.onclick = function () { GV.sort = b.getAttribute("data-sort"); promptList(); };
  });
  var again = function () {
    promptList();
    if (GV.show !== null && GV.prompts[GV.show]) showPrompt(GV.show);
  };
  document.getElementById("search").oninput = again;
  document.getElementById("fkeep").onchange = again;
  document.getElementById("fcorrect").onchange = again;
  if (p !== null && /^\d+$/.test(p)) openPrompt(Number(p));
  var c = new URLSearchParams(window.location.hash.slice(1)).get("click");
  document.querySelectorAll("#prompt-table tr.pick").forEach(function (tr) {
    if (c !== null && tr.firstChild.textContent === c) tr.click();  // as a reader's click
  });
}
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>gvstore view</title>
<style>{{CSS}}</style></head>
<body>
<h1>gvstore view</h1>
<p>Chosen spec: <code id="spec"></code></p>
<h2>Gap table</h2><div id="overview"></div>
<h2>Plots</h2><div id="plots"></div>
<h2>Prompts</h2>
<div class="bar"><select id="group"></select>
sort by: <button data-sort="gap">gap</button><button data-sort="acc">accuracy</button>\
<button data-sort="disagree">disagreement</button>
<input id="search" type="search" placeholder="search">
<select id="fkeep"><option value="all">kept and rejected</option><option value="kept">kept\
</option><option value="rejected">rejected</option></select>
<select id="fcorrect"><option value="all">correct and wrong</option><option value="correct">\
correct</option><option value="wrong">wrong</option></select></div>
<div id="prompts"></div>
<div id="samples"></div>
<script>{{SCRIPT}}</script>
<script>{{DATA}}</script>
<script>start();</script>
</body></html>
"""


def render(data_call: str) -> str:
    """The page with ``data_call`` (a safely encoded ``gvIndex(...)`` call) inside."""
    return (PAGE.replace("{{CSS}}", CSS).replace("{{SCRIPT}}", SCRIPT)
            .replace("{{DATA}}", data_call))
