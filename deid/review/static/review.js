// deid review page: box drawing on an SVG over the original, one-key shortcuts, JSON calls with the CSRF token.
// The server keeps the boxes and renders the candidate from the original; this script only sends numbers.
"use strict";
(function () {
  const dataNode = document.getElementById("item-data");
  if (!dataNode) return;
  const item = JSON.parse(dataNode.textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const KINDS = ["face", "text", "tattoo", "person", "sensitive_body"];
  const svg = document.getElementById("boxes");
  const candidate = document.getElementById("candidate");
  const list = document.querySelector("#region-list tbody");
  const kindSelect = document.getElementById("kind");
  const message = document.getElementById("message");
  const comment = document.getElementById("comment");
  const help = document.getElementById("help");
  let regions = item.regions.map((r) => Object.assign({}, r));
  let version = item.version;
  let selected = -1;
  let history = [];
  let saving = Promise.resolve(true);
  let excludeArmed = false;
  const decided = item.state !== "pending";

  function say(text) { message.textContent = text || ""; }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let payload = {};
    try { payload = await response.json(); } catch (e) { payload = {}; }
    return { status: response.status, payload: payload };
  }

  function copy(rs) { return rs.map((r) => Object.assign({}, r, { box: r.box.slice() })); }

  function save() {
    // Saves run one after another so each sends the version the previous one returned.
    const snapshot = copy(regions);
    saving = saving.then(async () => {
      const result = await post(`/api/items/${item.id}/boxes`, { version: version, regions: snapshot });
      if (result.status === 200) {
        version = result.payload.version;
        if (candidate) candidate.src = `/items/${item.id}/candidate.png?v=${version}`;
        say("");
        return true;
      }
      say(result.payload.error || `could not save (${result.status})`);
      return false;
    });
    return saving;
  }

  function change(mutator) {
    history.push(copy(regions));
    mutator();
    draw();
    save();
  }

  const NS = "http://www.w3.org/2000/svg";
  function rect(box, cls) {
    const node = document.createElementNS(NS, "rect");
    node.setAttribute("x", box[0]); node.setAttribute("y", box[1]);
    node.setAttribute("width", box[2]); node.setAttribute("height", box[3]);
    node.setAttribute("class", cls);
    return node;
  }

  function draw() {
    if (!svg) return;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    (item.detected || []).forEach((r) => svg.appendChild(rect(r.box, "model")));
    regions.forEach((r, i) => {
      const classes = ["region", r.mode === "crop" ? "crop" : "", r.dismissed ? "dismissed" : "", i === selected ? "selected" : ""];
      const node = rect(r.box, classes.join(" ").trim());
      node.dataset.index = i;
      svg.appendChild(node);
    });
    if (selected >= 0 && regions[selected]) {
      const b = regions[selected].box;
      const size = Math.max(8, item.width / 80);
      const handle = rect([b[0] + b[2] - size / 2, b[1] + b[3] - size / 2, size, size], "handle");
      handle.dataset.handle = selected;
      svg.appendChild(handle);
    }
    if (list) {
      list.innerHTML = "";
      regions.forEach((r, i) => {
        const row = document.createElement("tr");
        if (i === selected) row.className = "selected";
        [i + 1, r.kind, Number(r.score).toFixed(2), r.source, r.note || "", r.dismissed ? "dismissed" : r.mode].forEach((v) => {
          const cell = document.createElement("td"); cell.textContent = v; row.appendChild(cell);
        });
        row.addEventListener("click", () => { selected = i; draw(); });
        list.appendChild(row);
      });
    }
  }

  function point(event) {
    const p = svg.createSVGPoint();
    p.x = event.clientX; p.y = event.clientY;
    const q = p.matrixTransform(svg.getScreenCTM().inverse());
    return [Math.max(0, Math.min(item.width, q.x)), Math.max(0, Math.min(item.height, q.y))];
  }

  let drag = null;
  if (svg && !decided) {
    svg.addEventListener("mousedown", (event) => {
      event.preventDefault();
      const target = event.target;
      const start = point(event);
      if (target.dataset && target.dataset.handle !== undefined) {
        drag = { mode: "resize", index: Number(target.dataset.handle), start: start, before: copy(regions), box: regions[Number(target.dataset.handle)].box.slice() };
      } else if (target.dataset && target.dataset.index !== undefined) {
        selected = Number(target.dataset.index);
        drag = { mode: "move", index: selected, start: start, before: copy(regions), box: regions[selected].box.slice() };
      } else {
        drag = { mode: "draw", start: start, before: copy(regions) };
        regions.push({ kind: kindSelect.value, box: [start[0], start[1], 0, 0], score: 1.0, source: `review:${item.me}`, note: "drawn by a reviewer", mode: "redact", dismissed: false });
        selected = regions.length - 1;
        drag.index = selected;
      }
      draw();
    });
    window.addEventListener("mousemove", (event) => {
      if (!drag) return;
      const p = point(event);
      const r = regions[drag.index];
      if (drag.mode === "draw") {
        r.box = [Math.min(p[0], drag.start[0]), Math.min(p[1], drag.start[1]), Math.abs(p[0] - drag.start[0]), Math.abs(p[1] - drag.start[1])];
      } else if (drag.mode === "move") {
        r.box = [drag.box[0] + p[0] - drag.start[0], drag.box[1] + p[1] - drag.start[1], drag.box[2], drag.box[3]];
      } else {
        r.box = [drag.box[0], drag.box[1], Math.max(2, drag.box[2] + p[0] - drag.start[0]), Math.max(2, drag.box[3] + p[1] - drag.start[1])];
      }
      draw();
    });
    window.addEventListener("mouseup", () => {
      if (!drag) return;
      const done = drag; drag = null;
      const r = regions[done.index];
      if (done.mode === "draw" && (r.box[2] < 3 || r.box[3] < 3)) {
        regions = done.before; selected = -1; draw(); return;
      }
      r.box = r.box.map((v) => Math.round(v));
      history.push(done.before);
      draw();
      save();
    });
  }

  async function decide(verdict) {
    if (decided) { say("already decided"); return; }
    const ok = await saving;
    if (!ok) return;
    const body = { version: version, verdict: verdict, view: item.route, comment: comment ? comment.value : "" };
    if (verdict === "exclude") body.reason = document.getElementById("exclude-reason").value;
    const result = await post(`/api/items/${item.id}/decide`, body);
    if (result.status === 200) {
      say(`${result.payload.state}`);
      window.location.href = result.payload.next_url || "/";
    } else {
      say(result.payload.error || `refused (${result.status})`);
    }
  }

  async function saveComment() {
    const ok = await saving;
    if (!ok) return;
    const result = await post(`/api/items/${item.id}/comment`, { version: version, comment: comment.value });
    if (result.status === 200) { version = result.payload.version; say("comment saved"); }
    else say(result.payload.error || `could not save (${result.status})`);
  }

  function go(id) { const link = document.getElementById(id); if (link) window.location.href = link.href; }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target && (event.target.tagName === "INPUT" || event.target.tagName === "SELECT" || event.target.tagName === "TEXTAREA");
    if (typing) {
      if (event.target === comment && event.key === "Enter") { event.preventDefault(); saveComment(); comment.blur(); }
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const key = event.key;
    if (key !== "x") excludeArmed = false;
    if (key === "a") { event.preventDefault(); decide("approve"); }
    else if (key === "x") {
      event.preventDefault();
      if (excludeArmed) { decide("exclude"); }
      else { excludeArmed = true; document.getElementById("exclude-reason").focus(); say("choose a reason, then press Enter on the button or x again"); }
    }
    else if (key === "Enter" && excludeArmed) { decide("exclude"); }
    else if (key === "n") go("next");
    else if (key === "p") go("prev");
    else if (key === "u") {
      if (history.length) { regions = history.pop(); selected = -1; draw(); save(); }
    }
    else if (key >= "1" && key <= "5") {
      const kind = KINDS[Number(key) - 1];
      kindSelect.value = kind;
      if (selected >= 0) change(() => { regions[selected].kind = kind; });
    }
    else if (key === "d" || key === "Delete") {
      if (selected >= 0) change(() => { regions.splice(selected, 1); selected = -1; });
    }
    else if (key === "f") {
      if (selected >= 0) change(() => { regions[selected].dismissed = !regions[selected].dismissed; });
    }
    else if (key === "r") {
      if (selected >= 0) change(() => { regions[selected].mode = regions[selected].mode === "crop" ? "redact" : "crop"; });
    }
    else if (key === "c") { event.preventDefault(); comment.focus(); }
    else if (key === "?") { help.hidden = !help.hidden; }
  });

  const approve = document.getElementById("approve");
  if (approve) approve.addEventListener("click", () => decide("approve"));
  document.getElementById("exclude").addEventListener("click", () => decide("exclude"));
  document.getElementById("help-button").addEventListener("click", () => { help.hidden = !help.hidden; });
  draw();
})();
