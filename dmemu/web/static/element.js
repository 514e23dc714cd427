// The element card: the element's pages as tabs (in the protocol's order), its parameters with
// display values and units, write parameters set through the API (so with the engine's checks:
// a refused value shows the engine's message next to the field and nothing changes), buttons,
// page buttons opening sub-pages, and its tables paged, sorted and filtered on the server.

import { ApiFailure, elementPath, get, part, post, put } from "./api.js";
import { debounced, h, plural, replace, throttled } from "./dom.js";

const STATE_COMMANDS = [
  ["start", "Start"],
  ["pause", "Pause"],
  ["stop", "Stop"],
  ["restart", "Restart"],
];
const PAGE_SIZES = [25, 50, 100, 500];
const FILTER_OPERATORS = /^(~|!=|>=|<=|=|>|<)/;

// What a person typed, as the API should get it: a number field's number as a number (anything
// else as typed, for the engine to refuse in its own words), a discrete's option as its value.
function typedValue(kind, text, options) {
  if (kind.kind === "discrete") {
    const option = options.find((entry) => String(entry.value) === text);
    return option ? option.value : text;
  }
  if (kind.kind === "number" || kind.kind === "datetime") {
    const trimmed = text.trim();
    if (trimmed !== "" && /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(trimmed)) return Number(trimmed);
  }
  return text;
}

// An editor for a write parameter or cell: input (or choice), Set button and the refusal's text.
// `send(value)` answers the new JSON (parameter or row) or throws an ApiFailure.
function valueEditor(name, kind, current, send, onDone) {
  const options = kind.options || [];
  const message = h("span", { class: "field-error", role: "alert", id: `error-${crypto.randomUUID()}` });
  let field;
  if (kind.kind === "discrete") {
    field = h(
      "select",
      { "aria-label": name, "aria-describedby": message.id },
      options.map((option) => h("option", { value: String(option.value), text: option.display })),
    );
    field.value = current === null || current === undefined ? "" : String(current);
  } else {
    field = h("input", {
      type: kind.secret ? "password" : "text",
      "aria-label": name,
      "aria-describedby": message.id,
      autocomplete: "off",
      spellcheck: "false",
      placeholder: kind.secret ? "new password" : "",
      title: kind.allowed || "",
    });
    if (!kind.secret) field.value = current === null || current === undefined ? "" : String(current);
  }
  field.dataset.dirty = "";
  field.addEventListener("input", () => (field.dataset.dirty = "1"));
  const button = h("button", { type: "submit", class: "set", "aria-label": `Set ${name}`, text: "Set" });
  const form = h("form", { class: "editor", "aria-label": `Edit ${name}` }, field, kind.units ? h("span", { class: "units", text: kind.units }) : null, button, message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      const answer = await send(typedValue(kind, field.value, options));
      message.textContent = "";
      field.removeAttribute("aria-invalid");
      field.dataset.dirty = "";
      if (kind.secret) field.value = "";
      onDone(answer);
    } catch (error) {
      if (!(error instanceof ApiFailure)) throw error;
      message.textContent = error.reason;
      field.setAttribute("aria-invalid", "true");
    } finally {
      button.disabled = false;
    }
  });
  // A live value reaches the field unless the person is typing in it.
  form.showValue = (value) => {
    if (kind.secret || field.dataset.dirty || document.activeElement === field) return;
    field.value = value === null || value === undefined ? "" : String(value);
  };
  return form;
}

export class ElementCard {
  constructor(app, ref) {
    this.app = app;
    this.ref = ref;
    this.root = h("section", { class: "card", "aria-label": `Element ${ref}` }, h("p", { class: "muted", text: "Loading…" }));
    this.parameters = new Map(); // id -> {display, editor}
    this.tables = new Map(); // id -> TableBlock
    this.pageName = null;
    this.load();
  }

  get path() {
    return elementPath(this.ref);
  }

  async load() {
    try {
      this.element = await get(this.path);
    } catch (error) {
      replace(this.root, h("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    this.root.setAttribute("aria-label", `Element ${this.element.name}`);
    this.header = h("header", { class: "card-header" });
    this.tabs = h("div", { class: "tabs", role: "tablist", "aria-label": `Pages of ${this.element.name}` });
    this.panel = h("div", { class: "page", role: "tabpanel" });
    replace(this.root, this.header, this.tabs, this.panel);
    this.renderHeader(this.element);
    const topPages = this.element.pages.filter((page) => page.depth === 0);
    for (const page of topPages) {
      const tab = h("button", { role: "tab", class: "tab", "aria-selected": "false", id: `tab-${crypto.randomUUID()}`, text: page.name });
      tab.addEventListener("click", () => this.openPage(page.name));
      tab.dataset.page = page.name;
      this.tabs.append(tab);
    }
    this.tabs.addEventListener("keydown", (event) => this.moveTab(event));
    if (topPages.length) await this.openPage(topPages[0].name);
    else replace(this.panel, h("p", { class: "muted", text: "This protocol declares no pages." }));
  }

  moveTab(event) {
    const tabs = [...this.tabs.querySelectorAll('[role="tab"]')];
    const at = tabs.indexOf(document.activeElement);
    if (at < 0) return;
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = tabs[(at + step + tabs.length) % tabs.length];
    next.focus();
    next.click();
  }

  renderHeader(element) {
    this.element = { ...this.element, ...element };
    const stateClass = `state state-${String(element.state).toLowerCase()}`;
    replace(
      this.header,
      h(
        "div",
        { class: "title" },
        h("h2", { text: element.name }),
        h("span", { class: "ids", title: "Agent/Element ids", text: element.ref }),
        h("span", { class: "protocol", text: `${element.protocol}${element.protocol_version ? ` ${element.protocol_version}` : ""}` }),
        h("span", { class: stateClass, "aria-label": `State ${element.state}`, text: element.state }),
      ),
      h(
        "div",
        { class: "commands", role: "group", "aria-label": "State commands" },
        STATE_COMMANDS.map(([command, label]) =>
          h("button", { type: "button", text: label, onclick: () => this.command(command) }),
        ),
      ),
      h("p", { class: "error", role: "alert", id: "command-error" }),
    );
  }

  async command(command) {
    const message = this.header.querySelector("#command-error");
    try {
      const element = await post(`${this.path}/${command}`);
      message.textContent = "";
      this.renderHeader(element);
      this.app.elementChanged(element);
    } catch (error) {
      message.textContent = error.message;
    }
  }

  // A top page (its tab selected) or a sub-page (the tab of the page it opens from stays selected).
  async openPage(name, from = null) {
    let page;
    try {
      page = await get(`${this.path}/pages/${part(name)}`);
    } catch (error) {
      replace(this.panel, h("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    this.pageName = name;
    const top = from ? from.top : name;
    for (const tab of this.tabs.children) {
      const selected = tab.dataset.page === top;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      if (selected) this.panel.setAttribute("aria-labelledby", tab.id);
    }
    this.parameters.clear();
    this.tables.clear();
    const trail = from ? [...from.trail, name] : [name];
    const parts = [];
    if (page.depth > 0 || from) {
      parts.push(
        h(
          "nav",
          { class: "breadcrumb", "aria-label": "Sub-page" },
          trail.map((step, index) =>
            index < trail.length - 1
              ? h("button", { type: "button", class: "link", text: step, onclick: () => this.openTrail(trail.slice(0, index + 1), top) })
              : h("strong", { text: step }),
          ),
        ),
      );
    }
    if (page.depth > 0) parts.push(h("h3", { class: "page-title", text: page.name })); // a top page's name is on its tab
    const parameters = h("div", { class: "parameters", role: "group", "aria-label": `Parameters of ${page.name}` });
    for (const parameter of page.parameters) parameters.append(this.parameterRow(parameter, { top, trail }));
    if (page.parameters.length) parts.push(parameters);
    const opened = new Set(page.parameters.filter((p) => p.type.kind === "page_button").map((p) => p.type.page));
    const others = page.sub_pages.filter((sub) => !opened.has(sub));
    if (others.length) {
      parts.push(
        h(
          "div",
          { class: "sub-pages", role: "group", "aria-label": "Sub-pages" },
          others.map((sub) => h("button", { type: "button", class: "page-button", text: `${sub}…`, onclick: () => this.openPage(sub, { top, trail }) })),
        ),
      );
    }
    for (const table of page.tables) {
      const block = new TableBlock(this, table);
      this.tables.set(table.id, block);
      parts.push(block.root);
    }
    if (!page.parameters.length && !page.tables.length && !others.length) parts.push(h("p", { class: "muted", text: "Nothing is shown on this page." }));
    replace(this.panel, ...parts);
  }

  async openTrail(trail, top) {
    if (trail.length === 1) return this.openPage(trail[0]);
    return this.openPage(trail[trail.length - 1], { top, trail: trail.slice(0, -1) });
  }

  parameterRow(parameter, where) {
    const kind = parameter.type;
    const value = h("output", { class: "value", "aria-label": `${parameter.name} value`, text: parameter.display });
    const row = h("div", { class: "parameter", dataset: { id: String(parameter.id) } });
    const label = h("span", { class: "name", title: parameter.description || `parameter ${parameter.id}`, text: parameter.name });
    let editor = null;
    if (kind.kind === "button") {
      editor = h("button", {
        type: "button",
        class: "action",
        "aria-label": parameter.name,
        text: kind.label || parameter.name,
        onclick: async () => {
          try {
            this.showParameter(await post(`${this.path}/buttons/${parameter.id}`));
            message.textContent = "";
          } catch (error) {
            message.textContent = error.message;
          }
        },
      });
      const message = h("span", { class: "field-error", role: "alert" });
      replace(row, label, h("span", { class: "controls" }, editor, message));
      this.parameters.set(parameter.id, { value: null, editor: null });
      return row;
    }
    if (kind.kind === "page_button") {
      editor = h("button", {
        type: "button",
        class: "page-button",
        text: `${kind.label || kind.page}…`,
        "aria-label": parameter.name,
        onclick: () => this.openPage(kind.page, where),
      });
      replace(row, label, h("span", { class: "controls" }, editor));
      return row;
    }
    if (parameter.write) {
      editor = valueEditor(
        parameter.name,
        { ...kind, units: parameter.units },
        parameter.value,
        (sent) => put(`${this.path}/parameters/${parameter.id}`, { value: sent }),
        (answer) => this.showParameter(answer),
      );
    }
    replace(row, label, value, editor || h("span", { class: "read-only", "aria-hidden": "true" }));
    this.parameters.set(parameter.id, { value, editor });
    return row;
  }

  showParameter(parameter) {
    const shown = this.parameters.get(parameter.id);
    if (!shown) return;
    if (shown.value) shown.value.textContent = parameter.display;
    if (shown.editor) shown.editor.showValue(parameter.value);
  }

  onEvent(type, data) {
    if (type === "ready") {
      if (this.pageName) this.reloadPage();
      return;
    }
    if (data.element !== this.ref && !(type === "element" && data.element.ref === this.ref)) return;
    if (type === "parameter") this.showParameter(data);
    else if (type === "table") this.tables.get(data.id)?.changed(data);
    else if (type === "element" && data.change !== "deleted") this.renderHeader(data.element);
  }

  // After a reconnection: what changed meanwhile was not heard, so read the page again.
  async reloadPage() {
    try {
      const page = await get(`${this.path}/pages/${part(this.pageName)}`);
      for (const parameter of page.parameters) this.showParameter(parameter);
      for (const block of this.tables.values()) block.reload();
    } catch {
      // the element may be gone; its tree entry says so
    }
  }
}

// One table: a page of rows from the server, sorted by any column, filtered, its row count,
// a row in full on demand (write cells editable there), the display key first where it is made
// of several columns (a key of one column is that column, already shown: a copy of it says nothing).
class TableBlock {
  constructor(card, table) {
    this.card = card;
    this.table = table;
    this.keyColumn = Boolean(table.display_key && table.display_key.columns.length > 1);
    this.columns = table.columns;
    this.offset = 0;
    this.limit = 50;
    this.sort = null; // column id
    this.descending = false;
    this.filters = new Map(); // column id -> text as typed
    this.search = "";
    this.openKey = null;
    this.reloadSoon = throttled(() => this.reload(), 300);
    this.build();
    this.reload();
  }

  get path() {
    return `${this.card.path}/tables/${this.table.id}`;
  }

  build() {
    const name = this.table.name;
    this.count = h("span", { class: "count", role: "status", "aria-label": `${name} row count` });
    const search = h("input", { type: "search", "aria-label": `Search ${name}`, placeholder: "Search all columns" });
    search.addEventListener("input", debounced(() => {
      this.search = search.value;
      this.offset = 0;
      this.reload();
    }, 250));
    const size = h("select", { "aria-label": `Rows per page of ${name}` }, PAGE_SIZES.map((n) => h("option", { value: String(n), text: `${n} rows` })));
    size.value = String(this.limit);
    size.addEventListener("change", () => {
      this.limit = Number(size.value);
      this.offset = 0;
      this.reload();
    });
    this.head = h("thead");
    this.body = h("tbody");
    this.grid = h("table", { class: "grid", "aria-label": name }, this.head, this.body);
    this.pager = h("nav", { class: "pager", "aria-label": `Pages of ${name}` });
    this.detail = h("div", { class: "row-detail-slot" });
    this.error = h("p", { class: "error", role: "alert" });
    this.root = h(
      "section",
      { class: "table-block", "aria-label": `${name} table` },
      h("header", {}, h("h4", { text: name }), h("span", { class: "table-id", text: `table ${this.table.id}` }), this.count, h("span", { class: "spacer" }), search, size),
      this.error,
      h("div", { class: "grid-wrap" }, this.grid),
      this.pager,
      this.detail,
    );
    this.renderHead();
  }

  renderHead() {
    const headers = [];
    const filters = [];
    if (this.keyColumn) {
      headers.push(h("th", { scope: "col", class: "display-key", title: `Display key: ${this.table.display_key.columns.join(this.table.display_key.separator)}`, text: "Display Key" }));
      filters.push(h("th", {}));
    }
    for (const column of this.columns) {
      const sorted = this.sort === column.id;
      const arrow = sorted ? (this.descending ? " ▼" : " ▲") : "";
      headers.push(
        h(
          "th",
          { scope: "col", "aria-sort": sorted ? (this.descending ? "descending" : "ascending") : "none", class: column.key ? "key" : null },
          h("button", {
            type: "button",
            class: "sort",
            "aria-label": `Sort by ${column.name}`,
            title: `${column.name} (column ${column.id})${column.key ? ", the key" : ""}`,
            text: column.name + arrow,
            onclick: () => this.sortBy(column.id),
          }),
        ),
      );
      const filter = h("input", {
        type: "text",
        "aria-label": `Filter ${column.name}`,
        placeholder: "filter",
        title: column.type.kind === "number" ? "a number: =, !=, >, >=, < or <= first (> 5); else text it contains" : "text it contains, or =, != first for the exact text",
        value: this.filters.get(column.id) || "",
      });
      filter.addEventListener("input", debounced(() => {
        if (filter.value.trim()) this.filters.set(column.id, filter.value.trim());
        else this.filters.delete(column.id);
        this.offset = 0;
        this.reload();
      }, 300));
      filters.push(h("th", { class: "filter" }, filter));
    }
    replace(this.head, h("tr", {}, headers), h("tr", { class: "filters" }, filters));
  }

  sortBy(columnId) {
    if (this.sort === columnId) this.descending = !this.descending;
    else {
      this.sort = columnId;
      this.descending = false;
    }
    this.offset = 0;
    // Only the arrows change: the filter inputs (and the focus) stay.
    const cells = this.head.rows[0].cells;
    const first = this.keyColumn ? 1 : 0;
    this.columns.forEach((column, index) => {
      const th = cells[first + index];
      const sorted = this.sort === column.id;
      th.setAttribute("aria-sort", sorted ? (this.descending ? "descending" : "ascending") : "none");
      th.firstChild.textContent = column.name + (sorted ? (this.descending ? " ▼" : " ▲") : "");
    });
    this.reload();
  }

  query() {
    const query = new URLSearchParams({ offset: String(this.offset), limit: String(this.limit) });
    if (this.sort !== null) query.set("sort", `${this.descending ? "-" : ""}${this.sort}`);
    for (const [columnId, text] of this.filters) {
      query.append("filter", `${columnId}${FILTER_OPERATORS.test(text) ? text.replace(/^(~|!=|>=|<=|=|>|<)\s*/, "$1") : `~${text}`}`);
    }
    if (this.search) query.set("search", this.search);
    return query.toString();
  }

  async reload() {
    let answer;
    try {
      answer = await get(this.path, this.query());
    } catch (error) {
      this.error.textContent = error.message;
      return;
    }
    this.error.textContent = "";
    this.answer = answer;
    if (answer.rows.length === 0 && answer.offset > 0 && answer.matched > 0) {
      this.offset = Math.max(0, Math.floor((answer.matched - 1) / this.limit) * this.limit);
      return this.reload();
    }
    this.renderRows(answer);
    this.renderCount(answer);
    this.renderPager(answer);
  }

  renderRows(answer) {
    const rows = answer.rows.map((row) => {
      const cells = [];
      if (this.keyColumn) cells.push(h("td", { class: "display-key", title: row.display_key, text: row.display_key }));
      row.display.forEach((text, index) => {
        const column = this.columns[index];
        cells.push(h("td", { class: column.type.kind === "number" ? "number" : null, title: text, text }));
      });
      const tr = h("tr", { tabindex: "0", "aria-label": `Row ${row.display_key}`, dataset: { key: row.key } }, cells);
      if (row.key === this.openKey) tr.setAttribute("aria-current", "true");
      tr.addEventListener("click", () => this.openRow(row.key));
      tr.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          this.openRow(row.key);
        }
      });
      return tr;
    });
    if (!rows.length) {
      const span = this.columns.length + (this.keyColumn ? 1 : 0);
      rows.push(h("tr", { class: "empty" }, h("td", { colspan: String(span), text: answer.row_count ? "No row matches." : "The table is empty." })));
    }
    replace(this.body, rows);
  }

  renderCount(answer) {
    const shown = answer.rows.length ? `${(answer.offset + 1).toLocaleString("en")}–${(answer.offset + answer.rows.length).toLocaleString("en")}` : "0";
    const total = plural(answer.row_count, "row");
    this.count.textContent = answer.matched === answer.row_count ? `${shown} of ${total}` : `${shown} of ${answer.matched.toLocaleString("en")} matching, ${total} in all`;
  }

  renderPager(answer) {
    const pages = Math.max(1, Math.ceil(answer.matched / this.limit));
    const current = Math.floor(answer.offset / this.limit) + 1;
    this.pager.hidden = pages === 1 && current === 1; // a table that fits one page needs no pager
    const go = (page) => {
      this.offset = (page - 1) * this.limit;
      this.reload();
    };
    replace(
      this.pager,
      h("button", { type: "button", text: "« First", disabled: current <= 1, onclick: () => go(1) }),
      h("button", { type: "button", text: "‹ Previous", disabled: current <= 1, onclick: () => go(current - 1) }),
      h("span", { class: "page-of", text: `Page ${current.toLocaleString("en")} of ${pages.toLocaleString("en")}` }),
      h("button", { type: "button", text: "Next ›", disabled: current >= pages, onclick: () => go(current + 1) }),
      h("button", { type: "button", text: "Last »", disabled: current >= pages, onclick: () => go(pages) }),
    );
  }

  changed(event) {
    this.reloadSoon();
    if (this.openKey !== null && (event.keys === null || event.removed === null || event.keys.includes(this.openKey) || event.removed.includes(this.openKey))) {
      this.openRow(this.openKey, { keepFocus: true });
    }
  }

  async openRow(key, { keepFocus = false } = {}) {
    let row;
    try {
      row = await get(`${this.path}/rows/${part(key)}`);
    } catch (error) {
      if (error.status === 404 && keepFocus) {
        replace(this.detail, h("p", { class: "muted", text: `Row ${key} was removed.` }));
        return;
      }
      this.error.textContent = error.message;
      return;
    }
    // A live refresh leaves a field the person is typing in alone.
    if (keepFocus && this.detail.contains(document.activeElement)) return;
    this.openKey = key;
    for (const tr of this.body.rows) tr.toggleAttribute("aria-current", tr.dataset.key === key);
    const entries = row.cells.map((cell, index) => {
      const column = this.columns[index];
      let editor = null;
      if (column.write) {
        editor = valueEditor(
          column.name,
          column.type,
          cell.value,
          (sent) => put(`${this.path}/cells/${column.id}/${part(key)}`, { value: sent }),
          (answer) => {
            this.openRow(answer.key, { keepFocus: false });
            this.reloadSoon();
          },
        );
      }
      return h("div", { class: "cell" }, h("dt", { title: `column ${cell.id}`, text: cell.name }), h("dd", {}, h("span", { class: "full", text: cell.display }), editor));
    });
    replace(
      this.detail,
      h(
        "section",
        { class: "row-detail", role: "dialog", "aria-label": `Row ${row.display_key} of ${this.table.name}` },
        h("header", {}, h("h5", { text: row.display_key }), h("span", { class: "muted", text: `key ${row.key}` }), h("button", { type: "button", class: "close", "aria-label": "Close row", text: "×", onclick: () => this.closeRow() })),
        h("dl", {}, entries),
      ),
    );
  }

  closeRow() {
    this.openKey = null;
    this.detail.replaceChildren();
    for (const tr of this.body.rows) tr.removeAttribute("aria-current");
  }
}
