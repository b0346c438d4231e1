// A small code editor: a textarea (which keeps native editing, selection, undo and screen
// reader support) laid over a <pre> that shows the same text highlighted for JavaScript or
// Python. Tab indents; Escape then Tab leaves the editor, so the keyboard is never trapped.

const JS_KEYWORDS = new Set(("async await break case catch class const continue debugger default " +
  "delete do else export extends finally for from function if import in instanceof let new of " +
  "return static super switch this throw try typeof var void while with yield").split(" "));
const JS_LITERALS = new Set(["true", "false", "null", "undefined", "NaN", "Infinity"]);
const PY_KEYWORDS = new Set(("and as assert async await break class continue def del elif else " +
  "except finally for from global if import in is lambda nonlocal not or pass raise return try " +
  "while with yield match case").split(" "));
const PY_LITERALS = new Set(["True", "False", "None", "self"]);

// Each rule: [token class or null, sticky regular expression]. The first that matches wins.
const RULES = {
  javascript: [
    ["com", /\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/y],
    ["str", /`(?:\\[\s\S]|[^\\`])*`?|"(?:\\.|[^\\"\n])*"?|'(?:\\.|[^\\'\n])*'?/y],
    ["num", /\b(?:0[xX][\da-fA-F_]+|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?n?)\b/y],
    ["word", /[A-Za-z_$][\w$]*/y],
  ],
  python: [
    ["com", /#[^\n]*/y],
    ["str", /[rRbBfFuU]{0,2}(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\.|[^\\"\n])*"?|'(?:\\.|[^\\'\n])*'?)/y],
    ["num", /\b(?:0[xXoObB][\da-fA-F_]+|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?j?)\b/y],
    ["word", /[A-Za-z_][\w]*/y],
  ],
};

function escapeHtml(text) {
  return text.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);
}

// Returns HTML: `code` with its tokens wrapped in <span class="tok-...">.
export function highlight(code, language) {
  const rules = RULES[language] || RULES.javascript;
  const keywords = language === "python" ? PY_KEYWORDS : JS_KEYWORDS;
  const literals = language === "python" ? PY_LITERALS : JS_LITERALS;
  let out = "";
  let plain = "";
  let i = 0;
  outer: while (i < code.length) {
    for (const [kind, re] of rules) {
      re.lastIndex = i;
      const m = re.exec(code);
      if (!m || m[0].length === 0) continue;
      let cls = kind;
      if (kind === "word") {
        const word = m[0];
        if (keywords.has(word)) cls = "kw";
        else if (literals.has(word)) cls = "lit";
        else if (/^\s*\(/.test(code.slice(i + word.length, i + word.length + 8))) cls = "fn";
        else cls = null;
      }
      if (cls) {
        out += escapeHtml(plain) + `<span class="tok-${cls}">${escapeHtml(m[0])}</span>`;
        plain = "";
      } else {
        plain += m[0];
      }
      i += m[0].length;
      continue outer;
    }
    plain += code[i++];
  }
  // A trailing newline needs a character after it, or the <pre> is a line shorter than the
  // textarea and the two scroll apart.
  return out + escapeHtml(plain) + "\n ";
}

export function languageOf(runtime) {
  return /^py/.test(runtime || "") ? "python" : "javascript";
}

// Builds an editor in place of nothing: returns {element, textarea, value, setValue,
// setLanguage}. `id` labels the textarea (a <label for=id> outside names it).
export function createEditor({ id, value = "", language = "javascript", label }) {
  const wrap = document.createElement("div");
  wrap.className = "editor";
  const pre = document.createElement("pre");
  pre.setAttribute("aria-hidden", "true");
  const textarea = document.createElement("textarea");
  textarea.id = id;
  textarea.spellcheck = false;
  textarea.autocapitalize = "off";
  textarea.setAttribute("autocomplete", "off");
  textarea.setAttribute("wrap", "off");
  if (label) textarea.setAttribute("aria-label", label);
  textarea.setAttribute("aria-describedby", id + "-keys");
  const keys = document.createElement("span");
  keys.id = id + "-keys";
  keys.className = "hint";
  keys.hidden = true;
  keys.textContent = "Tab indents. Press Escape, then Tab, to move on.";
  wrap.append(pre, textarea, keys);
  let lang = language;
  let tabLeaves = false;
  const render = () => {
    pre.innerHTML = highlight(textarea.value, lang);
    pre.scrollTop = textarea.scrollTop;
    pre.scrollLeft = textarea.scrollLeft;
  };
  textarea.addEventListener("input", render);
  textarea.addEventListener("scroll", () => {
    pre.scrollTop = textarea.scrollTop;
    pre.scrollLeft = textarea.scrollLeft;
  });
  textarea.addEventListener("focus", () => { tabLeaves = false; });
  // Typed through the browser's editing commands where it has them, so Ctrl+Z undoes it.
  const insert = (text) => {
    const done = text ? document.execCommand?.("insertText", false, text)
                      : document.execCommand?.("delete");
    if (!done) {
      textarea.setRangeText(text, textarea.selectionStart, textarea.selectionEnd, "end");
    }
    render();
  };
  textarea.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { tabLeaves = true; return; }
    if (e.ctrlKey || e.altKey || e.metaKey) return;
    const indent = lang === "python" ? "    " : "  ";
    const { selectionStart: s, value: v } = textarea;
    const lineStart = v.lastIndexOf("\n", s - 1) + 1;
    if (e.key === "Enter" && !e.shiftKey) {
      // A new line keeps the indentation of this one, one deeper after an opening bracket
      // (or a Python block's colon).
      e.preventDefault();
      const line = v.slice(lineStart, s);
      const opens = lang === "python" ? /:\s*(#.*)?$/ : /[{[(]\s*$/;
      insert("\n" + line.match(/^[ \t]*/)[0] + (opens.test(line) ? indent : ""));
      return;
    }
    if (e.key !== "Tab" || tabLeaves) return;
    e.preventDefault();
    if (e.shiftKey) {
      const remove = v.slice(lineStart, lineStart + indent.length).match(/^ */)[0].length;
      if (remove === 0) return;
      textarea.setSelectionRange(lineStart, lineStart + remove);
      insert("");
      textarea.setSelectionRange(Math.max(lineStart, s - remove), Math.max(lineStart, s - remove));
    } else {
      insert(indent);
    }
  });
  textarea.value = value;
  render();
  return {
    element: wrap,
    textarea,
    get value() { return textarea.value; },
    setValue(v) { textarea.value = v; render(); },
    setLanguage(l) { lang = l; render(); },
  };
}
