// Gallery uploads: files, a folder (picker or drop) or archives → POST /api/v1/images/ in batches;
// each batch becomes an import job whose progress the page polls (templates/gallery/_jobs.html).
(() => {
  const MAX_FILES = 100;               // files per request (the server accepts up to 1000)
  const MAX_BYTES = 200 * 1024 * 1024; // bytes per request

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
  }

  function readAll(reader) {
    return new Promise((resolve, reject) => {
      const entries = [];
      const next = () => reader.readEntries((batch) => {
        if (!batch.length) { resolve(entries); return; }
        entries.push(...batch);
        next();
      }, reject);
      next();
    });
  }

  async function walk(entry, out) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ file, path: entry.fullPath.replace(/^\//, "") });
    } else if (entry.isDirectory) {
      for (const child of await readAll(entry.createReader())) await walk(child, out);
    }
  }

  function batches(items) {
    const out = [];
    let current = [], bytes = 0;
    for (const item of items) {
      if (current.length && (current.length >= MAX_FILES || bytes + item.file.size > MAX_BYTES)) {
        out.push(current); current = []; bytes = 0;
      }
      current.push(item); bytes += item.file.size;
    }
    if (current.length) out.push(current);
    return out;
  }

  async function send(items, status) {
    const label = document.getElementById("upload-label").value;
    const fromDirs = document.getElementById("upload-labels-from-dirs").checked;
    const groups = batches(items);
    let sent = 0;
    for (const group of groups) {
      const body = new FormData();
      for (const item of group) {
        body.append("files", item.file, item.file.name);
        body.append("paths", item.path || item.file.name);
      }
      body.append("label", label);
      body.append("labels_from_dirs", fromDirs ? "true" : "false");
      const response = await fetch(status.dataset.endpoint || "/api/v1/images/", {
        method: "POST", body, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() },
      });
      if (!response.ok) {
        let detail = response.statusText;
        try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
        status.textContent = `Upload refused: ${detail}`;
        return;
      }
      sent += group.length;
      status.textContent = `Sent ${sent} of ${items.length} files; importing (see below).`;
      document.body.dispatchEvent(new Event("upload-sent"));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const status = document.getElementById("upload-status");
    status.dataset.endpoint = form.dataset.endpoint;
    const fromInput = (input) => {
      const items = Array.from(input.files, (file) => ({ file, path: file.webkitRelativePath || file.name }));
      input.value = "";
      if (items.length) send(items, status);
    };
    document.getElementById("upload-files").addEventListener("change", (e) => fromInput(e.target));
    document.getElementById("upload-folder").addEventListener("change", (e) => fromInput(e.target));
    ["dragenter", "dragover"].forEach((name) => form.addEventListener(name, (event) => {
      event.preventDefault();
      form.classList.add("dragging");
    }));
    ["dragleave", "drop"].forEach((name) => form.addEventListener(name, () => form.classList.remove("dragging")));
    form.addEventListener("drop", async (event) => {
      event.preventDefault();
      const items = [];
      const entries = Array.from(event.dataTransfer.items || [], (item) => item.webkitGetAsEntry && item.webkitGetAsEntry());
      if (entries.length && entries.every(Boolean)) {
        for (const entry of entries) await walk(entry, items);
      } else {
        for (const file of event.dataTransfer.files) items.push({ file, path: file.name });
      }
      if (items.length) send(items, status);
    });
    form.addEventListener("submit", (event) => event.preventDefault());
  });
})();
