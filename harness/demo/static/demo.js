// The page of `harness demo`: canvases at the dataset's resolution, drop zones, and the two JSON endpoints.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

function text(tag, content, cls) {
  const node = document.createElement(tag);
  node.textContent = content;
  if (cls) node.className = cls;
  return node;
}

function fmt(value) {
  return typeof value === "number" ? value.toFixed(4) : String(value);
}

async function post(path, body) {
  let response;
  try {
    response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                  body: JSON.stringify(body)});
  } catch (err) {
    return {error: "the demo server does not answer (stopped?); restart it with harness demo"};
  }
  let answer;
  try {
    answer = await response.json();
  } catch (err) {
    return {error: `the server answered ${response.status} without a readable body`};
  }
  if (!response.ok && !answer.error) answer.error = `the server answered ${response.status}`;
  return answer;
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function showMessage(box, list, error, notices) {
  box.hidden = !error;
  box.textContent = error || "";
  list.replaceChildren(...(notices || []).map((n) => text("li", n)));
}

// A drawing pad: a canvas whose pixels are the dataset's (width x height), shown enlarged.
function makePad(canvas, onStroke) {
  const [, height, width] = info.shape;
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const pad = {canvas, drawn: false, file: null};
  pad.clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
    pad.drawn = false;
    pad.file = null;
  };
  pad.clear();
  ctx.strokeStyle = "#fff";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = Math.max(1, width / 11);
  let drawing = false;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * width / r.width, (e.clientY - r.top) * height / r.height];
  };
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true;
    pad.file = null;
    canvas.setPointerCapture(e.pointerId);
    const [x, y] = at(e);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + 0.01, y);
    ctx.stroke();
    e.preventDefault();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const [x, y] = at(e);
    ctx.lineTo(x, y);
    ctx.stroke();
  });
  const end = (e) => {
    if (!drawing) return;
    drawing = false;
    pad.drawn = true;
    onStroke(performance.now());
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  pad.image = () => pad.file ? {image: pad.file, source: "file"}
                             : {image: canvas.toDataURL("image/png"), source: "canvas"};
  return pad;
}

// Drop zones and file pickers: the file's own bytes go to the server, which says what it changed or refuses.
function makeDrop(zone, input, onFile) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) onFile(e.dataTransfer.files[0], performance.now());
  });
  input.addEventListener("change", () => {
    if (input.files.length) onFile(input.files[0], performance.now());
    input.value = "";
  });
}

function showInfo() {
  const box = $("run-info");
  box.replaceChildren();
  const axes = Object.entries(info.axes).map(([k, v]) => `${k}=${v}`).join(", ");
  const lines = [
    ["Study", `${info.study} — ${info.title}`],
    ["Run", `${info.run_id} (${axes}, seed ${info.seed})${info.default_run ? ", the profile's demo run" : ""}`],
    ["Profile", `${info.profile}: ${info.profile_description}`],
    ["Dataset", `${info.dataset}, ${info.shape.join("x")} inputs; model ${info.model.name}, loss ${info.loss}`],
    ["Record", `${info.record} (digest ${String(info.record_digest).slice(0, 12)}…)`],
    ["Weights", `${info.weights}`],
    ["Reference", `${info.reference_size} images, ${info.class_count} classes: ${info.reference}`],
    ["Neighbours", `${info.distance}; class = vote of the ${info.knn_k} nearest (a tie goes to the smallest label), as the study's kNN accuracy scores it`],
    ["Tables", `${info.tables.join(", ")} (rerun them: ${info.verify})`],
  ];
  const dl = document.createElement("dl");
  for (const [term, value] of lines) {
    dl.append(text("dt", term), text("dd", value));
  }
  box.append(dl);
  const table = document.createElement("table");
  table.id = "metrics";
  table.append(text("caption", `The record's metrics at epoch ${info.metrics_epoch}`));
  for (const [name, value] of Object.entries(info.metrics)) {
    const row = document.createElement("tr");
    row.append(text("th", name), text("td", fmt(value)));
    table.append(row);
  }
  box.append(table);
  $("threshold-source").textContent =
    `"Same" when the ${info.distance} is at most ${fmt(info.threshold)}, the run's verification threshold: ${info.threshold_source}.`;
}

// --- nearest images ----------------------------------------------------------------------------------------------
let querySeq = 0;

async function ask(image, started) {
  const mine = ++querySeq;
  const answer = await post("/api/neighbours", image);
  if (mine !== querySeq) return;  // a later stroke has asked again: show only the newest answer
  const list = $("neighbours");
  showMessage($("message"), $("notices"), answer.error, answer.notices);
  if (answer.error) {
    $("prediction").replaceChildren();
    list.replaceChildren();
    $("seen").hidden = true;
    $("seen-caption").textContent = "";
  } else {
    const p = answer.prediction;
    const votes = Object.entries(p.votes).map(([n, c]) => `${n} ×${c}`).join(", ");
    $("prediction").replaceChildren(text("span", "Predicted class: "), text("strong", p.name, "class-name"),
                                    text("span", ` (vote of the ${p.k} nearest: ${votes})`));
    $("seen").src = answer.input;
    $("seen").hidden = false;
    $("seen-caption").textContent = "what the network sees";
    list.replaceChildren(...answer.neighbours.map((n) => {
      const item = document.createElement("li");
      item.className = n.votes ? "neighbour votes" : "neighbour";
      item.dataset.label = n.name;
      item.dataset.distance = n.distance;
      const img = document.createElement("img");
      img.src = n.image;
      img.alt = n.name;
      item.append(img, text("span", n.name, "label"), text("span", fmt(n.distance), "distance"));
      return item;
    }));
  }
  // Shown means painted: the time is taken in the frame after the page changed.
  requestAnimationFrame(() => {
    const ms = performance.now() - started;
    list.dataset.latencyMs = ms.toFixed(1);
    list.dataset.seq = String(mine);
    $("latency").textContent = answer.error ? "" :
      `${ms.toFixed(0)} ms from the stroke to these neighbours (server ${answer.server_ms.toFixed(1)} ms)`;
  });
}

// --- two images --------------------------------------------------------------------------------------------------
let compareSeq = 0;
const pads = {};

async function compare(started) {
  const [a, b] = [pads.first, pads.second];
  if (!(a.drawn || a.file) || !(b.drawn || b.file)) {
    $("verdict").replaceChildren(text("span", "Draw or drop a second image to compare."));
    return;
  }
  const mine = ++compareSeq;
  const answer = await post("/api/compare", {first: a.image(), second: b.image()});
  if (mine !== compareSeq) return;
  showMessage($("compare-message"), $("compare-notices"), answer.error, answer.notices);
  const box = $("verdict");
  if (answer.error) {
    box.replaceChildren();
    box.dataset.verdict = "";
  } else {
    box.dataset.verdict = answer.same ? "same" : "different";
    box.replaceChildren(text("strong", answer.same ? "Same class" : "Different classes", answer.same ? "same" : "different"),
                        text("span", ` — ${answer.distance_name} ${fmt(answer.distance)} ${answer.same ? "≤" : ">"} threshold ${fmt(answer.threshold)}`));
  }
  box.dataset.seq = String(mine);
  box.dataset.latencyMs = (performance.now() - started).toFixed(1);
}

// --- start --------------------------------------------------------------------------------------------------------
async function start() {
  try {
    info = await (await fetch("/api/info")).json();
  } catch (err) {
    $("run-info").textContent = "The demo server does not answer; restart it with harness demo.";
    return;
  }
  showInfo();
  const pad = makePad($("canvas"), (t) => ask(pad.image(), t));
  $("clear").addEventListener("click", () => {
    pad.clear();
    querySeq++;
    $("neighbours").replaceChildren();
    $("prediction").replaceChildren();
    $("seen").hidden = true;
    $("seen-caption").textContent = "";
    $("latency").textContent = "";
    showMessage($("message"), $("notices"), "", []);
  });
  $("ask").addEventListener("click", () => ask(pad.image(), performance.now()));
  makeDrop($("drop"), $("file"), async (file, t) => ask({image: await readFile(file), source: "file"}, t));
  for (const side of ["first", "second"]) {
    const p = pads[side] = makePad($(`canvas-${side}`), (t) => compare(t));
    $(`clear-${side}`).addEventListener("click", () => { p.clear(); compare(performance.now()); });
    makeDrop($(`drop-${side}`), $(`file-${side}`), async (file, t) => {
      p.clear();
      p.file = await readFile(file);
      compare(t);
    });
  }
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tabs button")) {
        const active = other === tab;
        other.classList.toggle("active", active);
        other.setAttribute("aria-selected", String(active));
        $(other.dataset.panel).hidden = !active;
      }
    });
  }
  document.body.dataset.ready = "true";
}

start();
