// fgbg view: grid, sample page and overview of one dataset. Plain JavaScript, no build step,
// nothing fetched from outside the server (or, for an exported site, from data.js next to it).
"use strict";

const STATIC = window.FGBG_STATIC || null; // set by data.js in an exported site
const FILTERS = ["bg", "fg", "flip", "placement"];
const PER_PAGE = 100;
const params = new URLSearchParams(location.search);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function currentFilters() {
  const f = {};
  for (const k of FILTERS) {
    const v = params.get(k);
    if (v !== null && v !== "" && /^-?[0-9]+$/.test(v)) f[k] = parseInt(v, 10);
  }
  return f;
}

function queryString(obj) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  return q.toString();
}

async function getJSON(url, options) {
  const r = await fetch(url, options);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function matches(item, f) {
  return (f.bg === undefined || item.bg.index === f.bg) && (f.fg === undefined || item.fg.index === f.fg)
    && (f.flip === undefined || item.flip === f.flip) && (f.placement === undefined || item.placement === f.placement);
}

// -- where data and images come from: the server's API, or the exported data.js -------------
const api = {
  overview: () => (STATIC ? Promise.resolve(STATIC.overview) : getJSON("api/overview")),
  samples(page, filters) {
    if (!STATIC) return getJSON("api/samples?" + queryString({ page, per: PER_PAGE, ...filters }));
    const all = STATIC.items.filter((it) => matches(it, filters));
    const pages = Math.max(1, Math.ceil(all.length / PER_PAGE));
    const p = Math.min(Math.max(0, page), pages - 1);
    return Promise.resolve({ total: all.length, page: p, pages, per: PER_PAGE, filters,
      items: all.slice(p * PER_PAGE, (p + 1) * PER_PAGE) });
  },
  sample(i, filters) {
    if (!STATIC) return getJSON(`api/sample/${i}?` + queryString(filters));
    const s = STATIC.samples[String(i)];
    if (!s) return Promise.reject(new Error(`sample ${i} is not in this export`));
    const chosen = STATIC.items.filter((it) => matches(it, filters)).map((it) => it.index);
    const at = chosen.indexOf(i);
    return Promise.resolve({ ...s, prev: at > 0 ? chosen[at - 1] : null,
      next: at >= 0 && at + 1 < chosen.length ? chosen[at + 1] : null });
  },
};
const urls = {
  thumb: (i, mode) => (STATIC ? `img/thumb/${i}-${mode}.jpg` : `img/thumb/${i}.jpg?mode=${mode}`),
  file: (i, name) => `img/sample/${i}/${name}`,
  input: (kind, n) => `img/input/${kind}/${n}.png`,
};

function link(extra) {
  return "?" + queryString({ ...currentFilters(), ...extra });
}

// -- the grid -----------------------------------------------------------------------------
function filterForm(overview, filters, mode) {
  const form = el("form", { class: "filters", id: "filters" });
  const choice = (name, label, options) => {
    const select = el("select", { name, id: `filter-${name}` }, el("option", { value: "", text: "any" }));
    for (const [value, text] of options) {
      const o = el("option", { value: String(value), text });
      if (filters[name] === value) o.selected = true;
      select.append(o);
    }
    form.append(el("label", {}, label, select));
  };
  choice("bg", "background", (overview.inputs.bg || []).map((n, k) => [k, `${k}: ${n}`]));
  choice("fg", "foreground", (overview.inputs.fg || []).map((n, k) => [k, `${k}: ${n}`]));
  choice("flip", "flip", [[0, "0 (as is)"], [1, "1 (mirrored)"]]);
  const placement = el("input", { type: "number", min: "0", name: "placement", id: "filter-placement" });
  if (filters.placement !== undefined) placement.value = String(filters.placement);
  form.append(el("label", {}, "placement", placement));
  const modes = el("span", { id: "modes" });
  for (const m of ["plain", "mask", "depth"]) {
    const radio = el("input", { type: "radio", name: "mode", value: m, id: `mode-${m}` });
    if (m === mode) radio.checked = true;
    if (m === "depth" && !(overview.fields || []).includes("depth")) radio.disabled = true;
    modes.append(el("label", {}, radio, m === "plain" ? "composite" : m === "mask" ? "mask overlay" : "depth"));
  }
  form.append(modes, el("button", { type: "submit", id: "apply", text: "apply" }));
  form.addEventListener("change", (e) => { if (e.target.name === "mode") form.requestSubmit(); });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const q = { view: "grid", mode: data.get("mode") || "plain" };
    for (const k of FILTERS) if (data.get(k) !== "") q[k] = data.get(k);
    location.search = "?" + queryString(q);
  });
  return form;
}

async function showGrid(main) {
  const filters = currentFilters();
  const page = parseInt(params.get("page") || "0", 10) || 0;
  const mode = ["plain", "mask", "depth"].includes(params.get("mode")) ? params.get("mode") : "plain";
  const [overview, result] = await Promise.all([api.overview(), api.samples(page, filters)]);
  main.replaceChildren(filterForm(overview, filters, mode));
  const pager = el("div", { class: "pager" });
  const go = (p) => link({ view: "grid", mode, page: p });
  if (result.page > 0) pager.append(el("a", { href: go(result.page - 1), id: "prev-page", text: "← previous" }));
  pager.append(el("span", { id: "page-info",
    text: `page ${result.page + 1} of ${result.pages} · ${result.total.toLocaleString()} samples` }));
  if (result.page + 1 < result.pages) pager.append(el("a", { href: go(result.page + 1), id: "next-page", text: "next →" }));
  const grid = el("div", { class: "grid", id: "grid" });
  for (const it of result.items) {
    const title = `${it.key} · bg ${it.bg.index} ${it.bg.name} · fg ${it.fg.index} ${it.fg.name} · flip ${it.flip}`
      + ` · placement ${it.placement}`;
    const img = el("img", { class: "thumb", src: urls.thumb(it.index, mode), alt: it.key, title, "data-key": it.key,
      "data-bg": String(it.bg.index), "data-fg": String(it.fg.index), loading: "lazy", width: "112", height: "112" });
    grid.append(el("a", { href: link({ view: "sample", i: it.index }) }, img));
  }
  main.append(pager, grid);
}

// -- one sample -----------------------------------------------------------------------------
function depthProbe(i, target, out) {
  // the stored 8-bit depth map, read back into a canvas: the level under the cursor
  const img = new Image();
  img.onload = () => {
    const canvas = el("canvas", { width: String(img.width), height: String(img.height) });
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(img, 0, 0);
    target.addEventListener("mousemove", (e) => {
      const r = target.getBoundingClientRect();
      const x = Math.min(img.width - 1, Math.floor(((e.clientX - r.left) / r.width) * img.width));
      const y = Math.min(img.height - 1, Math.floor(((e.clientY - r.top) / r.height) * img.height));
      out.textContent = `level ${ctx.getImageData(x, y, 1, 1).data[0]} at (${x}, ${y})`;
    });
    out.textContent = "move over the map for its level";
  };
  img.src = urls.file(i, "depth.png");
}

async function showSample(main) {
  const i = parseInt(params.get("i") || "0", 10) || 0;
  const s = await api.sample(i, currentFilters());
  const nav = el("div", { class: "pager" });
  if (s.prev !== null) nav.append(el("a", { href: link({ view: "sample", i: s.prev }), id: "prev", text: "← previous" }));
  nav.append(el("strong", { id: "sample-key", text: `sample ${s.key}` }));
  if (s.next !== null) nav.append(el("a", { href: link({ view: "sample", i: s.next }), id: "next", text: "next →" }));
  nav.append(el("a", { href: link({ view: "grid" }), text: "back to the grid" }));
  const [w, h] = s.size;
  const scale = 2;
  const composite = el("div", { class: "stack" },
    el("img", { src: urls.file(i, "image.jpg"), id: "composite", width: String(w * scale), height: String(h * scale), alt: "composite" }));
  for (const p of s.people) {  // every person's placement box, in its instance colour
    const [bx, by, bw, bh] = p.box;
    const box = el("div", { class: "box", id: p.instance === 1 && s.people.length === 1 ? "box" : `box-${p.instance}` });
    box.style.left = `${bx * scale}px`; box.style.top = `${by * scale}px`;
    box.style.width = `${bw * scale}px`; box.style.height = `${bh * scale}px`;
    if (s.people.length > 1) { box.style.borderColor = p.colour; box.append(el("span", { text: String(p.instance) })); }
    composite.append(box);
  }
  const panels = el("div", { class: "panels" },
    el("div", { class: "panel" }, el("h3", { text: s.people.length > 1 ? `composite, ${s.people.length} people` : "composite, placement box" }), composite),
    el("div", { class: "panel" }, el("h3", { text: "mask" }),
      el("img", { src: urls.file(i, "mask.png"), id: "mask", width: String(w), height: String(h), alt: "mask" })));
  if (s.instances) {
    panels.append(el("div", { class: "panel" }, el("h3", { text: "instances (paint order)" }),
      el("img", { src: urls.file(i, "instances-colour.png"), id: "instances", width: String(w), height: String(h), alt: "instances" })));
  }
  if (s.depth) {
    const depth = el("img", { src: urls.file(i, "depth-colour.png"), id: "depth", width: String(w), height: String(h), alt: "depth" });
    const value = el("div", { id: "depth-value", class: "muted", text: "…" });
    const legend = el("div", { class: "legend", id: "depth-legend" },
      el("span", { text: "0 near" }), el("span", { class: "bar" }), el("span", { text: "255 far" }));
    panels.append(el("div", { class: "panel" }, el("h3", { text: "depth (fixed colour map, 8-bit levels)" }),
      depth, legend, value));
    depthProbe(i, depth, value);
    if (s.bg_depth) {  // --depth-layers: the model's view of the background alone, beside the painted map
      panels.append(el("div", { class: "panel" }, el("h3", { text: "background prediction (the model once per background)" }),
        el("img", { src: urls.file(i, "bg-depth-colour.png"), id: "bg-depth", width: String(w), height: String(h), alt: "background depth" })));
    }
  }
  panels.append(el("div", { class: "panel" }, el("h3", { text: `background ${s.bg.index}: ${s.bg.name}` }),
      el("img", { src: urls.input("bg", s.bg.index), id: "input-bg", height: "160", alt: "background" })),
    el("div", { class: "panel" }, el("h3", { text: `foreground ${s.fg.index}: ${s.fg.name}` }),
      el("img", { src: urls.input("fg", s.fg.index), id: "input-fg", height: "160", alt: "foreground" })));
  main.replaceChildren(nav, panels, el("h3", { text: "annotation" }),
    el("pre", { id: "annotation", text: JSON.stringify(s.annotation, null, 2) }));
}

// -- overview -------------------------------------------------------------------------------
function table(rows, id) {
  const t = el("table", id ? { id } : {});
  for (const row of rows) t.append(el("tr", {}, ...row.map((c, k) => el(k === 0 ? "th" : "td", { text: String(c) }))));
  return t;
}

function histogram(series, colours, id) {
  const canvas = el("canvas", { class: "hist", width: "512", height: "120", id });
  const ctx = canvas.getContext("2d");
  const top = Math.max(1, ...series.flat());
  series.forEach((counts, k) => {
    ctx.strokeStyle = colours[k];
    ctx.beginPath();
    counts.forEach((c, x) => { const y = 118 - (c / top) * 114; if (x === 0) ctx.moveTo(0, y); else ctx.lineTo(x * 2, y); });
    ctx.stroke();
  });
  return canvas;
}

async function showVerify(box, state) {
  box.replaceChildren();
  if (state.state === "done" && state.report) {
    const r = state.report;
    box.append(el("p", { id: "verify-result", class: r.ok ? "" : "error",
      text: r.ok ? `OK: ${r.samples_checked} samples, ${r.shards_checked} shards checked`
        : `${r.problems.length} problem(s)` }));
    if (!r.ok) box.append(table(r.problems.map((p) => [p.where, p.what, p.sample || ""])));
  } else if (state.state === "running") {
    box.append(el("p", { id: "verify-result", class: "muted", text: "verify running…" }));
    setTimeout(async () => showVerify(box, await getJSON("api/verify")), 1000);
  } else if (state.state === "failed") {
    box.append(el("p", { id: "verify-result", class: "error", text: state.error }));
  }
  if (!STATIC && state.state !== "running") {
    const button = el("button", { id: "verify", text: "run fgbg verify" });
    button.addEventListener("click", async () => showVerify(box, await getJSON("api/verify", { method: "POST" })));
    box.append(button);
  } else if (STATIC && !state.report) {
    box.append(el("p", { class: "muted", text: "not verified in this export: run `fgbg verify DATASET`" }));
  }
}

async function showOverview(main) {
  const o = await api.overview();
  const bytes = Object.entries(o.bytes).map(([f, b]) => `${f} ${(b / 2 ** 20).toFixed(1)} MiB`).join(", ");
  const stats = [];
  for (const [field, s] of Object.entries(o.statistics)) stats.push([field, s.mean.map((v) => v.toFixed(4)).join(", "),
    s.std.map((v) => v.toFixed(4)).join(", ")]);
  const depth = o.depth || {};
  const verify = el("div", { id: "verify-box" });
  main.replaceChildren(
    el("h2", { text: "Overview" }),
    table([["samples", o.samples.toLocaleString()], ["shards", JSON.stringify(o.shards)], ["bytes", bytes],
      ["fields", o.fields.join(", ")], ["read as", o.format]], "counts"),
    el("h3", { text: "depth source" }),
    table([["backend", depth.backend || ""], ["weights", depth.weights_file || ""], ["weights sha256", depth.weights_sha256 || ""],
      ["runtime, dtype", `${depth.runtime || ""} ${depth.dtype || ""}`]], "depth-source"),
    el("h3", { text: "statistics (exact, from the build; [0, 1] scale)" }),
    table([["field", "mean", "std"], ...stats], "statistics"),
    el("h3", { text: `histograms (${o.histograms.how})` }),
    histogram(o.histograms.image, ["#d33", "#3a3", "#33d"], "hist-image"),
    ...(o.histograms.depth ? [el("div", { class: "muted", text: "depth levels 0..255" }),
      histogram([o.histograms.depth], ["#555"], "hist-depth")] : []),
    el("h3", { text: "samples per background and foreground" }),
    ...(o.index_problem ? [el("p", { class: "error", text: o.index_problem })] : []),
    table([["background", "samples"], ...(o.per_input.bg || []).map((r) => [`${r.index}: ${r.name}`, r.samples])], "per-bg"),
    table([["foreground", "samples"], ...(o.per_input.fg || []).map((r) => [`${r.index}: ${r.name}`, r.samples])], "per-fg"),
    el("h3", { text: "verify" }), verify,
    el("h3", { text: "config" }), el("pre", { id: "config", text: JSON.stringify(o.config, null, 2) }));
  showVerify(verify, o.verify || { state: "idle" });
}

async function main() {
  const main = document.getElementById("main");
  const view = params.get("view") || "grid";
  try {
    const overview = await api.overview();
    document.getElementById("dataset").textContent = overview.url;
    if (view === "sample") await showSample(main);
    else if (view === "overview") await showOverview(main);
    else await showGrid(main);
  } catch (e) {
    main.replaceChildren(el("p", { class: "error", id: "error", text: String(e.message || e) }));
  }
}

main();
