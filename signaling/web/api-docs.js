// The API docs page: fetches the OpenAPI document and lists its operations by tag, each with
// its parameters, request body and responses (schemas shown as JSON). No outside resources.

const main = document.getElementById("api-docs");
const status = document.getElementById("api-docs-status");

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

function json(value) {
  return el("pre", { textContent: JSON.stringify(value, null, 2) });
}

function parameters(op) {
  if (!op.parameters?.length) return [];
  const rows = op.parameters.map((p) =>
    el("tr", {},
      el("td", { textContent: p.name }),
      el("td", { textContent: p.in }),
      el("td", { textContent: p.required ? "required" : "" }),
      el("td", { textContent: p.description ?? "" })));
  return [el("h4", { textContent: "Parameters" }), el("table", {}, ...rows)];
}

function content(body) {
  return Object.entries(body?.content ?? {}).flatMap(([type, media]) =>
    [el("p", { textContent: type }), ...(media.schema ? [json(media.schema)] : [])]);
}

function responses(op) {
  return Object.entries(op.responses ?? {}).flatMap(([code, r]) =>
    [el("h4", { textContent: `${code} ${r.description ?? ""}` }), ...content(r)]);
}

function operation(method, path, op) {
  const secured = (op.security ?? []).some((s) => Object.keys(s).length > 0);
  const summary = el("summary", {},
    el("span", { className: "method", textContent: method }),
    el("span", { className: "path", textContent: path }),
    ...(secured ? [el("span", { className: "lock", textContent: "bearer" })] : []),
    ` — ${op.summary ?? ""}`);
  const body = op.requestBody
    ? [el("h4", { textContent: "Request body" }), ...content(op.requestBody)]
    : [];
  return el("details", {}, summary,
    el("p", { textContent: op.description ?? "" }),
    ...parameters(op), ...body, ...responses(op));
}

function render(doc) {
  const byTag = new Map((doc.tags ?? []).map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item)) {
      const tag = op.tags?.[0] ?? "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(method, path, op));
    }
  }
  status.textContent = doc.info?.description ?? "";
  for (const tag of doc.tags ?? []) {
    const ops = byTag.get(tag.name) ?? [];
    main.append(el("h2", { textContent: tag.name }), el("p", { textContent: tag.description ?? "" }), ...ops);
    byTag.delete(tag.name);
  }
  for (const [name, ops] of byTag) main.append(el("h2", { textContent: name }), ...ops);
  const schemas = doc.components?.schemas ?? {};
  main.append(el("h2", { textContent: "Schemas" }),
    ...Object.entries(schemas).map(([name, schema]) =>
      el("details", {}, el("summary", { textContent: name }), json(schema))));
}

fetch(main.dataset.document)
  .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
  .then(render)
  .catch((e) => { status.textContent = `Cannot load the document: ${e.message}`; });
