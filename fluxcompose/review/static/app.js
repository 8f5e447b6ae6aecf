/* fluxcompose review: the page. No framework, no assets from the internet. */
"use strict";
(function () {
  const TOKEN = document.querySelector('meta[name="review-token"]').content;
  const POLL_MS = 1500;
  const CHUNK = 120; // grid cards rendered at a time (more as the page scrolls)
  const ZOOMS = [1, 1.5, 2, 3, 4, 6];
  const $ = (sel) => document.querySelector(sel);

  const state = {
    data: null, // /api/jobs
    byKey: new Map(),
    view: null, // "grid" | "job" | "agreement"
    key: null, // the job shown
    detail: null,
    filters: { checks: "all", review: "all", flagged: false },
    sort: "order",
    shown: [], // the grid's filtered, sorted jobs
    rendered: 0,
    reasons: new Set(),
    showTarget: false,
    overlays: false,
    armsSide: false, // A/B: the arms' outputs side by side in the stage
    zoom: 0, // index in ZOOMS
    version: null,
    busy: false,
  };

  // ---- helpers -------------------------------------------------------------------------
  function fileUrl(path, bust) {
    const enc = path.split("/").map(encodeURIComponent).join("/");
    return "/files/" + enc + (bust ? "?v=" + encodeURIComponent(bust) : "");
  }
  function thumbUrl(job) {
    // Cache key: the job's own change time, so a live update reloads only what changed.
    if (job.thumb) return fileUrl(job.thumb, job.updated);
    return "/api/thumb?path=" + encodeURIComponent(job.output || "") + "&v=" + encodeURIComponent(job.updated);
  }
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  function toast(msg, error) {
    const t = $("#toast");
    t.textContent = msg;
    t.className = "show" + (error ? " error" : "");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.className = ""; }, error ? 4000 : 1600);
  }
  async function getJSON(url) {
    const r = await fetch(url, { headers: { "X-Review-Token": TOKEN }, cache: "no-store" });
    if (!r.ok) throw new Error((await r.text()) || r.statusText);
    return r.json();
  }
  async function postJSON(url, body) {
    const r = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Review-Token": TOKEN },
      body: JSON.stringify(body),
    });
    const data = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(data.error || r.statusText);
    return data;
  }
  const CHECKS_LABEL = { passed: "checks passed", failed: "checks failed", not_measured: "not measured" };
  const REVIEW_LABEL = { approve: "approved", reject: "rejected" };
  const reviewKey = (j) => (j.review === "approve" ? "approved" : j.review === "reject" ? "rejected" : "unreviewed");
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
    if (Array.isArray(v)) return "[" + v.map(fmt).join(", ") + "]";
    return String(v);
  }
  function pct(x) { return (x * 100).toFixed(0) + " %"; }

  // ---- data ----------------------------------------------------------------------------
  async function loadJobs() {
    const data = await getJSON("/api/jobs");
    if (!state.data && data.kind === "ab") state.armsSide = true; // A/B: compare the arms first
    state.data = data;
    state.version = data.version;
    state.byKey = new Map(data.jobs.map((j) => [j.key, j]));
    $("#root").textContent = data.root + " · " + data.kind;
    updateCounts();
  }
  function updateCounts() {
    const c = { jobs: 0, passed: 0, failed: 0, not_measured: 0, unreviewed: 0, approved: 0, rejected: 0, flagged: 0 };
    for (const j of state.data.jobs) {
      c.jobs++; c[j.checks]++; c[reviewKey(j)]++; if (j.flagged) c.flagged++;
    }
    c.all = c.jobs;
    for (const b of document.querySelectorAll("#filters .filter")) {
      const value = b.id === "filter-flagged" ? "flagged" : b.dataset.value;
      let span = b.querySelector(".count");
      if (!span) { span = el("span", { class: "count" }); b.append(span); }
      span.textContent = "(" + (c[value] ?? 0) + ")";
      b.dataset.count = String(c[value] ?? 0);
    }
    $("#progress").textContent = (c.approved + c.rejected) + " of " + c.jobs + " reviewed";
  }
  function matches(j) {
    const f = state.filters;
    if (f.checks !== "all" && j.checks !== f.checks) return false;
    if (f.review !== "all" && reviewKey(j) !== f.review) return false;
    if (f.flagged && !j.flagged) return false;
    return true;
  }
  function sorted(list) {
    const out = list.slice();
    const rank = { failed: 0, not_measured: 1, passed: 2 };
    if (state.sort === "id") out.sort((a, b) => a.key.localeCompare(b.key));
    else if (state.sort === "checks") out.sort((a, b) => rank[a.checks] - rank[b.checks]);
    else if (state.sort === "unreviewed") out.sort((a, b) => (a.review ? 1 : 0) - (b.review ? 1 : 0));
    else if (state.sort === "newest") out.sort((a, b) => (b.finished_at || 0) - (a.finished_at || 0));
    return out;
  }
  function navList() {
    const filtered = sorted(state.data.jobs.filter(matches));
    if (state.key && filtered.some((j) => j.key === state.key)) return filtered;
    return sorted(state.data.jobs);
  }

  // ---- views ---------------------------------------------------------------------------
  function show(view) {
    state.view = view;
    for (const v of ["grid", "job", "agreement"]) $("#" + v + "-view").hidden = v !== view;
    $("#btn-grid").classList.toggle("on", view === "grid");
    $("#btn-agreement").classList.toggle("on", view === "agreement");
    document.body.dataset.view = view;
  }

  function renderGrid() {
    for (const b of document.querySelectorAll("#filters .filter[data-dim]")) {
      b.setAttribute("aria-pressed", String(state.filters[b.dataset.dim] === b.dataset.value));
    }
    $("#filter-flagged").setAttribute("aria-pressed", String(state.filters.flagged));
    state.shown = sorted(state.data.jobs.filter(matches));
    const grid = $("#grid");
    grid.replaceChildren();
    state.rendered = 0;
    appendCards();
    $("#grid-empty").hidden = state.shown.length > 0;
    $("#shown").textContent = state.shown.length + " shown";
  }
  function card(j) {
    const rk = reviewKey(j);
    return el("div", { class: "card", tabindex: "0", "data-key": j.key, "data-checks": j.checks,
        "data-review": rk, onclick: () => openJob(j.key) },
      el("div", { class: "img" }, el("img", { src: thumbUrl(j), loading: "lazy", alt: j.key, decoding: "async" })),
      el("div", { class: "meta" },
        el("span", { class: "name", text: j.key, title: j.key }),
        el("span", { class: "badge " + j.checks, text: CHECKS_LABEL[j.checks] }),
        el("span", { class: "badge " + (j.review || "unreviewed"), text: REVIEW_LABEL[j.review] || "unreviewed" }),
        j.flagged ? el("span", { class: "badge flag", text: "flagged" }) : null));
  }
  function appendCards() {
    const grid = $("#grid");
    const end = Math.min(state.shown.length, state.rendered + CHUNK);
    const frag = document.createDocumentFragment();
    for (let i = state.rendered; i < end; i++) frag.append(card(state.shown[i]));
    grid.append(frag);
    state.rendered = end;
  }
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && state.view === "grid" && state.rendered < state.shown.length) appendCards();
  }, { root: $("#grid-view"), rootMargin: "600px" }).observe($("#grid-sentinel"));

  function openGrid() {
    show("grid");
    renderGrid();
    history.replaceState(null, "", "#grid");
  }

  async function openJob(key) {
    state.key = key;
    state.showTarget = false;
    state.reasons.clear();
    $("#note").value = "";
    show("job");
    history.replaceState(null, "", "#job=" + encodeURIComponent(key));
    const detail = await getJSON("/api/job?key=" + encodeURIComponent(key));
    if (state.key !== key) return;
    state.detail = detail;
    renderJob();
  }

  function renderReasons() {
    const box = $("#reasons");
    box.querySelectorAll("label").forEach((l) => l.remove());
    state.data.reasons.forEach((r, i) => {
      const input = el("input", { type: "checkbox", name: "reason", value: r.name, id: "reason-" + r.name });
      input.checked = state.reasons.has(r.name);
      input.addEventListener("change", () => { toggleReason(r.name, input.checked); });
      box.append(el("label", { for: "reason-" + r.name, class: state.reasons.has(r.name) ? "on" : "" },
        input, el("kbd", { text: String(i + 1) }), document.createTextNode(" " + r.label)));
    });
  }
  function toggleReason(name, on) {
    if (on === undefined) on = !state.reasons.has(name);
    if (on) state.reasons.add(name); else state.reasons.delete(name);
    renderReasons();
  }

  function renderJob() {
    const d = state.detail;
    const j = state.byKey.get(d.key) || d;
    const list = navList();
    const pos = list.findIndex((x) => x.key === d.key);
    $("#job-id").textContent = d.key;
    $("#job-pos").textContent = pos >= 0 ? (pos + 1) + " / " + list.length : "";
    const cb = $("#checks-badge");
    cb.className = "badge " + d.checks; cb.textContent = CHECKS_LABEL[d.checks];
    const rs = $("#review-status");
    rs.className = "badge " + (j.review || "unreviewed");
    rs.textContent = j.review ? REVIEW_LABEL[j.review] + (j.reasons && j.reasons.length ? ": " + j.reasons.join(", ") : "") : "unreviewed";
    rs.dataset.verdict = j.review || "";
    $("#flag-badge").hidden = !d.flagged;
    renderReasons();
    renderImage();
    // candidates
    const cands = d.candidate_list || [];
    $("#candidates-box").hidden = cands.length < 2;
    $("#candidates").replaceChildren(...cands.map((c) => el("div", {
        class: "cand" + (c.chosen ? " chosen" : ""), "data-index": String(c.index), title: "seed " + c.seed,
        onclick: () => chooseCandidate(c.index) },
      c.output ? el("img", { src: "/api/thumb?path=" + encodeURIComponent(c.output), loading: "lazy", alt: "candidate " + c.index }) : null,
      el("div", { text: "#" + c.index + (c.chosen ? " · chosen" : "") }),
      el("div", { class: c.passed === true ? "pass" : c.passed === false ? "fail" : "nm",
        text: c.score ? c.score.passed + "/" + c.score.total : (c.state || "") }))));
    // arms (A/B)
    const arms = d.arms || [];
    $("#arms-box").hidden = arms.length < 2;
    $("#btn-arms").hidden = arms.length < 2;
    renderArmsStage();
    $("#arms").replaceChildren(...arms.map((a) => el("div", { class: "arm" + (a.key === d.key ? " current" : ""),
        "data-arm": a.arm, onclick: () => openJob(a.key) },
      el("img", { src: "/api/thumb?path=" + encodeURIComponent(a.output || "") + "&v=" + encodeURIComponent(a.updated), alt: a.arm, loading: "lazy" }),
      el("div", {}, el("b", { text: a.arm }), document.createTextNode(" "),
        el("span", { class: "badge " + a.checks, text: CHECKS_LABEL[a.checks] })))));
    // checks
    $("#checks-table tbody").replaceChildren(...(d.check_list || []).map((c) => el("tr", { "data-check": c.name },
      el("td", { text: c.name.replaceAll("_", " ") }),
      el("td", { class: "v", text: fmt(c.value) }),
      el("td", { class: "v muted", text: fmt(c.expected) }),
      el("td", { class: c.pass === true ? "pass" : c.pass === false ? "fail" : "nm",
        text: c.pass === true ? "pass" : c.pass === false ? "fail" : "not measured", title: c.reason || "" }))));
    $("#metrics tbody").replaceChildren(...Object.entries(d.metrics || {}).map(([k, v]) =>
      el("tr", {}, el("td", { text: k }), el("td", { class: "v", text: fmt(v) }))));
    $("#sources").replaceChildren(...(d.sources || []).map((s) => el("figure", {},
      s.thumb ? el("img", { src: fileUrl(s.thumb), alt: s.name || "source", loading: "lazy" }) : el("div", { class: "muted", text: "(no thumbnail)" }),
      el("figcaption", { text: (s.name || "") + " · " + (s.source || ""), title: s.source || "" }))));
    $("#sent").replaceChildren(...(d.sent || []).map((s) => el("figure", {},
      el("a", { href: fileUrl(s.path), target: "_blank" }, el("img", { src: "/api/thumb?path=" + encodeURIComponent(s.path), alt: s.name, loading: "lazy" })),
      el("figcaption", { text: s.name }))));
    $("#sheet-link").replaceChildren(d.sheet ? el("a", { href: fileUrl(d.sheet, Date.now()), target: "_blank", text: "Open the comparison sheet" }) : "");
    $("#prompt").textContent = [d.recipe ? "recipe " + d.recipe : "", d.model ? "model " + d.model : "",
      d.seed !== null && d.seed !== undefined ? "seed " + d.seed : "", d.prompt || ""].filter(Boolean).join(" · ");
    $("#history").replaceChildren(...(d.history || []).map((h) => el("li", {
      text: new Date(h.reviewed_at * 1000).toLocaleString() + " · " + h.verdict +
        (h.candidate ? " (candidate " + h.candidate + ")" : "") + (h.reasons.length ? ": " + h.reasons.join(", ") : "") +
        (h.note ? " — " + h.note : "") + (h.reviewer ? " · " + h.reviewer : "") })));
  }

  function singleView() {
    // Target, overlays and zoom act on the one output: leave the arms' side-by-side view.
    if (state.armsSide) { state.armsSide = false; renderArmsStage(); }
  }
  function renderImage() {
    const d = state.detail;
    const img = $("#main-img");
    const src = state.showTarget
      ? "/api/target?key=" + encodeURIComponent(d.key) + "&v=" + encodeURIComponent(d.updated)
      : fileUrl(d.output, d.updated + ":" + (d.chosen || ""));
    if (img.getAttribute("src") !== src) img.src = src;
    img.alt = state.showTarget ? "target" : "output";
    $("#showing").textContent = state.showTarget ? "target (as sent)" : "output";
    $("#btn-toggle-target").classList.toggle("on", state.showTarget);
    $("#btn-toggle-target").firstChild.textContent = state.showTarget ? "Show output " : "Show target ";
    const svg = $("#overlay");
    svg.toggleAttribute("hidden", !state.overlays); // an SVG element has no .hidden property
    $("#legend").hidden = !state.overlays;
    $("#btn-overlays").setAttribute("aria-pressed", String(state.overlays));
    const o = d.overlays || {};
    const ns = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    const rect = (b, cls) => {
      if (!b) return;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", b[0]); r.setAttribute("y", b[1]);
      r.setAttribute("width", Math.max(0, b[2] - b[0])); r.setAttribute("height", Math.max(0, b[3] - b[1]));
      r.setAttribute("class", cls); svg.append(r);
    };
    rect(o.garment_box, "garment");
    rect(o.chest_box, "chest");
    rect(o.edit_box, "edit");
    if (o.print_corners) {
      const p = document.createElementNS(ns, "polygon");
      p.setAttribute("points", o.print_corners.map((c) => c[0] + "," + c[1]).join(" "));
      p.setAttribute("class", "print"); svg.append(p);
    }
    fitImage();
  }
  function renderArmsStage() {
    const d = state.detail;
    const arms = (d && d.arms) || [];
    const on = state.armsSide && arms.length > 1;
    $("#btn-arms").setAttribute("aria-pressed", String(on));
    $("#arms-stage").hidden = !on;
    $("#stage").hidden = on;
    if (!on) return;
    $("#arms-stage").replaceChildren(...arms.map((a) => {
      const j = state.byKey.get(a.key) || {};
      return el("figure", { class: a.key === d.key ? "current" : "", "data-arm": a.arm, onclick: () => openJob(a.key) },
        el("img", { src: fileUrl(a.output, a.updated), alt: a.arm }),
        el("figcaption", { text: a.arm + " · " + CHECKS_LABEL[a.checks] + " · " + (REVIEW_LABEL[j.review] || "unreviewed") }));
    }));
  }
  function fitImage() {
    const img = $("#main-img");
    const stage = $("#stage");
    const frame = $("#frame");
    if (!img.naturalWidth) return;
    const fit = Math.min((stage.clientWidth - 16) / img.naturalWidth, (stage.clientHeight - 16) / img.naturalHeight);
    const z = ZOOMS[state.zoom];
    frame.style.width = Math.round(img.naturalWidth * fit * z) + "px";
    frame.style.height = Math.round(img.naturalHeight * fit * z) + "px";
    $("#zoom-level").textContent = z === 1 ? "fit" : z + "×";
  }
  $("#main-img").addEventListener("load", fitImage);
  window.addEventListener("resize", fitImage);
  function zoom(delta) {
    singleView();
    const stage = $("#stage");
    // Keep the point at the centre of the view where it is.
    const cx = (stage.scrollLeft + stage.clientWidth / 2) / Math.max(1, stage.scrollWidth);
    const cy = (stage.scrollTop + stage.clientHeight / 2) / Math.max(1, stage.scrollHeight);
    state.zoom = delta === 0 ? 0 : Math.max(0, Math.min(ZOOMS.length - 1, state.zoom + delta));
    fitImage();
    stage.scrollLeft = cx * stage.scrollWidth - stage.clientWidth / 2;
    stage.scrollTop = cy * stage.scrollHeight - stage.clientHeight / 2;
  }

  // ---- actions -------------------------------------------------------------------------
  function nextUnreviewed(list, fromKey) {
    const start = list.findIndex((x) => x.key === fromKey);
    for (let i = 1; i <= list.length; i++) {
      const j = list[(start + i + list.length) % list.length];
      if (j && !j.review && j.key !== fromKey) return j;
    }
    return null;
  }
  async function decide(verdict) {
    if (state.view !== "job" || !state.detail || state.busy) return;
    const key = state.detail.key;
    const reasons = verdict === "reject" ? [...state.reasons] : [];
    const list = navList();
    state.busy = true;
    try {
      const saved = await postJSON("/api/review", { key, verdict, reasons, note: $("#note").value || null });
      // Committed in the journal: only now is it shown as saved.
      const j = state.byKey.get(key);
      if (j) { j.review = saved.verdict; j.reasons = saved.reasons; }
      updateCounts();
      toast("saved: " + key + " " + REVIEW_LABEL[saved.verdict] + (saved.reasons.length ? " (" + saved.reasons.join(", ") + ")" : ""));
      const next = nextUnreviewed(list, key) || nextUnreviewed(sorted(state.data.jobs), key);
      if (next) await openJob(next.key); else openGrid();
    } catch (e) {
      toast("not saved: " + e.message, true);
    } finally {
      state.busy = false;
    }
  }
  async function step(delta) {
    if (state.view !== "job") return;
    const list = navList();
    const i = list.findIndex((x) => x.key === state.key);
    const j = list[(i + delta + list.length) % list.length];
    if (j) await openJob(j.key);
  }
  async function chooseCandidate(index) {
    if (!state.detail || state.busy) return;
    state.busy = true;
    try {
      const detail = await postJSON("/api/choose", { key: state.detail.key, candidate: index });
      const j = state.byKey.get(detail.key);
      if (j) { j.review = null; j.reasons = []; j.checks = detail.checks; j.updated = detail.updated; }
      state.detail = detail;
      state.showTarget = false;
      updateCounts();
      renderJob();
      toast("candidate " + index + " is now the output of " + detail.key);
    } catch (e) {
      toast("not changed: " + e.message, true);
    } finally {
      state.busy = false;
    }
  }
  function nextCandidate() {
    const cands = (state.detail && state.detail.candidate_list) || [];
    if (cands.length < 2) return;
    const i = cands.findIndex((c) => c.chosen);
    const next = cands[(i + 1) % cands.length];
    chooseCandidate(next.index);
  }

  async function openAgreement() {
    show("agreement");
    history.replaceState(null, "", "#agreement");
    const a = await getJSON("/api/agreement");
    const t = a.table;
    const figure = (id, k, n, r, ci, none) => {
      $(id).replaceChildren(r === null ? "–" : pct(r),
        el("div", { class: "ci", text: n === 0 ? none : k + " of " + n + " · 95 % CI " + pct(ci[0]) + "–" + pct(ci[1]) }));
    };
    figure("#false-pass", t.passed.rejected, t.passed.approved + t.passed.rejected, a.false_pass_rate,
      a.false_pass_ci, "no reviewed job passed its checks");
    figure("#false-fail", t.failed.approved, t.failed.approved + t.failed.rejected, a.false_fail_rate,
      a.false_fail_ci, "no reviewed job failed its checks");
    $("#reviewed").textContent = String(a.reviewed);
    const names = { passed: "checks passed", failed: "checks failed", not_measured: "not measured" };
    $("#agreement-table tbody").replaceChildren(...Object.entries(a.table).map(([k, v]) =>
      el("tr", { "data-row": k }, el("td", { text: names[k] }), el("td", { class: "approved", text: String(v.approved) }),
        el("td", { class: "rejected", text: String(v.rejected) }))));
    $("#per-check tbody").replaceChildren(...Object.entries(a.per_check).map(([k, v]) =>
      el("tr", { "data-check": k }, el("td", { text: k.replaceAll("_", " ") }),
        el("td", { text: String(v.pass_approved) }), el("td", { text: String(v.pass_rejected) }),
        el("td", { text: String(v.fail_approved) }), el("td", { text: String(v.fail_rejected) }))));
  }

  function toggleHelp(force) {
    const h = $("#help");
    h.hidden = force === undefined ? !h.hidden : !force;
  }

  // ---- wiring --------------------------------------------------------------------------
  $("#btn-grid").addEventListener("click", openGrid);
  $("#btn-agreement").addEventListener("click", openAgreement);
  $("#btn-help").addEventListener("click", () => toggleHelp());
  $("#btn-help-close").addEventListener("click", () => toggleHelp(false));
  $("#btn-approve").addEventListener("click", () => decide("approve"));
  $("#btn-reject").addEventListener("click", () => decide("reject"));
  $("#btn-next").addEventListener("click", () => step(1));
  $("#btn-prev").addEventListener("click", () => step(-1));
  $("#btn-next-candidate").addEventListener("click", nextCandidate);
  $("#btn-toggle-target").addEventListener("click", () => { singleView(); state.showTarget = !state.showTarget; renderImage(); });
  $("#btn-overlays").addEventListener("click", () => { singleView(); state.overlays = !state.overlays; renderImage(); });
  $("#btn-arms").addEventListener("click", () => { state.armsSide = !state.armsSide; renderArmsStage(); fitImage(); });
  $("#btn-zoom-in").addEventListener("click", () => zoom(1));
  $("#btn-zoom-out").addEventListener("click", () => zoom(-1));
  $("#btn-zoom-fit").addEventListener("click", () => zoom(0));
  for (const b of document.querySelectorAll("#filters .filter[data-dim]")) {
    b.addEventListener("click", () => { state.filters[b.dataset.dim] = b.dataset.value; renderGrid(); });
  }
  $("#filter-flagged").addEventListener("click", () => { state.filters.flagged = !state.filters.flagged; renderGrid(); });
  $("#sort").addEventListener("change", (e) => { state.sort = e.target.value; renderGrid(); });
  $("#grid").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target.dataset.key) openJob(e.target.dataset.key);
  });

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.tagName === "INPUT" && t.type === "text" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
      if (e.key === "Escape") t.blur();
      return;
    }
    const k = e.key;
    if (k === "?") { toggleHelp(); e.preventDefault(); return; }
    if (k === "Escape") { toggleHelp(false); return; }
    if (k === "g") { openGrid(); return; }
    if (state.view !== "job") return;
    if (k === "a") decide("approve");
    else if (k === "r") decide("reject");
    else if (k === "j") step(1);
    else if (k === "k") step(-1);
    else if (k === "c") nextCandidate();
    else if (k === "t") { singleView(); state.showTarget = !state.showTarget; renderImage(); }
    else if (k === "o") { singleView(); state.overlays = !state.overlays; renderImage(); }
    else if (k === "s") { state.armsSide = !state.armsSide; renderArmsStage(); fitImage(); }
    else if (k === "+" || k === "=") zoom(1);
    else if (k === "-") zoom(-1);
    else if (k === "0") zoom(0);
    else if (/^[1-9]$/.test(k)) {
      const r = state.data.reasons[Number(k) - 1];
      if (r) toggleReason(r.name);
    } else return;
    e.preventDefault();
  });

  async function poll() {
    try {
      const v = await getJSON("/api/version");
      $("#live").textContent = "live";
      if (v.version !== state.version && !state.busy) {
        await loadJobs();
        if (state.view === "grid") {
          const scroll = $("#grid-view").scrollTop;
          const keep = state.rendered;
          renderGrid();
          while (state.rendered < Math.min(keep, state.shown.length)) appendCards();
          $("#grid-view").scrollTop = scroll;
        } else if (state.view === "job" && state.detail) {
          renderJob();
        } else if (state.view === "agreement") {
          await openAgreement();
        }
      }
    } catch (e) {
      $("#live").textContent = "offline";
    }
    setTimeout(poll, POLL_MS);
  }

  async function start() {
    await loadJobs();
    const hash = decodeURIComponent(location.hash.slice(1));
    if (hash.startsWith("job=") && state.byKey.has(hash.slice(4))) await openJob(hash.slice(4));
    else if (hash === "agreement") await openAgreement();
    else if (hash === "grid") openGrid();
    else {
      const first = sorted(state.data.jobs).find((j) => !j.review);
      if (first) await openJob(first.key); else openGrid();
    }
    document.body.dataset.ready = "true";
    setTimeout(poll, POLL_MS);
  }
  start().catch((e) => toast("could not load: " + e.message, true));
})();
