// The search page's behaviour that htmx does not give: choose / drop / paste a file with a preview,
// the result viewer (a modal dialog), verdict buttons kept in step, the label filter and keyboard shortcuts.
// No inline script anywhere: the Content-Security-Policy allows scripts from this origin only.
(() => {
  "use strict";
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const viewerDialog = () => $("#viewer");
  const viewerOpen = () => viewerDialog() && viewerDialog().open;

  // --- Searching with a file: choose, drop anywhere, paste; preview while it uploads.
  function searchWith(file) {
    const form = $("#search-form");
    const input = $("#image-input");
    if (!form || !input || !file || !file.type.startsWith("image/")) return;
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    showPreview(file);
    htmx.trigger(form, "submit");
  }

  function showPreview(file) {
    const preview = $("#preview");
    if (!preview) return;
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  }

  function setUpSearchForm() {
    const form = $("#search-form");
    const input = $("#image-input");
    if (!form || !input) return;
    input.addEventListener("change", () => {
      if (input.files.length) {
        showPreview(input.files[0]);
        htmx.trigger(form, "submit");
      }
    });
    ["dragenter", "dragover"].forEach((name) => document.addEventListener(name, (event) => {
      if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
      event.preventDefault();
      document.body.classList.add("dragging");
    }));
    ["dragleave", "drop"].forEach((name) => document.addEventListener(name, (event) => {
      if (name === "dragleave" && event.relatedTarget) return;
      document.body.classList.remove("dragging");
    }));
    document.addEventListener("drop", (event) => {
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length) return;
      event.preventDefault();
      searchWith(files[0]);
    });
    document.addEventListener("paste", (event) => {
      const items = event.clipboardData ? Array.from(event.clipboardData.items) : [];
      const item = items.find((entry) => entry.kind === "file" && entry.type.startsWith("image/"));
      if (!item) return;
      event.preventDefault();
      searchWith(item.getAsFile());
    });
  }

  // --- The viewer: a modal dialog in front of the page wherever it is scrolled.
  function openViewer() {
    const dialog = viewerDialog();
    if (dialog && !dialog.open) dialog.showModal();
    const title = $("#viewer-title");
    if (title) title.focus({preventScroll: true});
  }

  function closeViewer() {
    const dialog = viewerDialog();
    if (dialog && dialog.open) dialog.close();
  }

  function currentHit() {
    const viewer = $("#viewer-body .viewer");
    return viewer && $(`#result-grid .hit[data-image-id="${viewer.dataset.imageId}"]`);
  }

  function step(delta) {
    const viewer = $("#viewer-body .viewer");
    const hit = currentHit();
    if (!viewer || !hit) return;
    const hits = $$("#result-grid .hit").filter((item) => !item.hidden);
    const next = hits[hits.indexOf(hit) + delta];
    if (!next) return;
    const params = new URLSearchParams({impression: viewer.dataset.impression, image: next.dataset.imageId,
                                        score: next.dataset.score});
    htmx.ajax("GET", `/feedback/viewer/?${params}`, {target: "#viewer-body", swap: "innerHTML"});
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.matches(".close-viewer")) closeViewer();
    else if (target.matches(".viewer-nav [data-step]")) step(Number(target.dataset.step));
    else if (target.matches(".shortcuts-open")) $("#shortcuts").showModal();
  });

  // A click outside the dialog's box (on its backdrop) closes it.
  document.addEventListener("click", (event) => {
    const dialog = event.target;
    if (!(dialog instanceof HTMLDialogElement) || !dialog.open) return;
    const box = dialog.getBoundingClientRect();
    const inside = event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top &&
      event.clientY <= box.bottom;
    if (!inside) dialog.close();
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target && target.id === "viewer-body" && !event.detail.failed) openViewer();
    if (target && target.id === "results") closeViewer();
    syncVerdicts(event.detail.elt);
    buildLabelFilter();
  });
  // Keep the history snapshot free of an open dialog (Back restores the page, not the modal).
  document.addEventListener("htmx:beforeHistorySave", () => { closeViewer(); });
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.target && event.detail.target.id === "results") closeViewer();
  });

  // --- Verdict buttons: the grid and the viewer show the same result's buttons; keep both in step.
  function syncVerdicts(swapped) {
    if (!(swapped instanceof Element) || !swapped.matches(".verdicts")) return;
    $$(`.verdicts[data-key="${swapped.dataset.key}"]`).forEach((other) => {
      if (other === swapped) return;
      const copy = swapped.cloneNode(true);
      other.replaceWith(copy);
      htmx.process(copy);
    });
  }

  // --- Filter the shown results by label.
  function buildLabelFilter() {
    const select = $("#label-filter");
    if (!select) return;
    const labels = [...new Set($$("#result-grid .hit").map((hit) => hit.dataset.label))].sort();
    const chosen = select.value;
    $$("option", select).slice(1).forEach((option) => option.remove());
    labels.forEach((label) => select.add(new Option(label, label)));
    select.value = labels.includes(chosen) ? chosen : "";
    applyLabelFilter();
  }

  function applyLabelFilter() {
    const select = $("#label-filter");
    const wanted = select ? select.value : "";
    $$("#result-grid .hit").forEach((hit) => { hit.hidden = Boolean(wanted) && hit.dataset.label !== wanted; });
  }

  document.addEventListener("change", (event) => {
    if (event.target.id === "label-filter") applyLabelFilter();
  });

  // --- Keyboard shortcuts ("?" lists them).
  function verdictButton(kind) {
    const scope = viewerOpen() ? $("#viewer-body") : document.activeElement && document.activeElement.closest(".hit");
    return scope && $(`.verdicts [data-verdict="${kind}"]`, scope);
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target.closest && event.target.closest("input, select, textarea");
    if (typing && event.target.type !== "file") return;
    const key = event.key;
    let done = true;
    if (key === "?") $("#shortcuts").showModal();
    else if (key === "/" && $("#image-input")) $("#image-input").focus();
    else if (viewerOpen() && (key === "ArrowRight" || key === "j")) step(1);
    else if (viewerOpen() && (key === "ArrowLeft" || key === "k")) step(-1);
    else if (viewerOpen() && key === "f") $("#viewer-body .find-similar").click();
    else if ((key === "s" || key === "n") && verdictButton(key === "s" ? "similar" : "dissimilar")) {
      verdictButton(key === "s" ? "similar" : "dissimilar").click();
    } else done = false;
    if (done) event.preventDefault();
  });

  // --- Dashboard: the retrain form shows batch-only fields in batch mode only.
  function showModeFields() {
    const mode = $("#id_mode");
    if (!mode) return;
    const online = mode.value === "oahu";
    $$("[data-batch-only]").forEach((field) => { field.hidden = online; });
    $$("[data-online-only]").forEach((field) => { field.hidden = !online; });
  }

  document.addEventListener("change", (event) => {
    if (event.target.id === "id_mode") showModeFields();
  });

  document.addEventListener("DOMContentLoaded", () => {
    showModeFields();
    setUpSearchForm();
    buildLabelFilter();
  });
})();
