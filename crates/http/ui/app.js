// Holt's web UI: renders each page from the JSON API. No dependency, no build step.
//
// Safety rules this file keeps:
// - Nothing from the server or a job is ever parsed as HTML: every text goes in through
//   text nodes (`el` below); no markup is ever assigned or written as a string.
// - The admin key lives in sessionStorage (gone when the browser session ends) and is sent
//   only in the X-ApiKey header of same-origin API calls, never in a URL.
'use strict';

(() => {
  const KEY = 'holt.adminKey';
  const TERMINAL = new Set(['Succeeded', 'Warning', 'Error']);
  const STATUSES = ['Pending', 'Executing', 'Succeeded', 'Warning', 'Error'];
  const LIST_REFRESH_MS = 2000;
  const main = document.getElementById('main');

  // ---- small tools -------------------------------------------------------------------------

  // An element with attributes and children; strings become text nodes, never markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else if (name === 'class') node.className = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function render(...nodes) {
    main.replaceChildren(...nodes.flat().filter(Boolean));
  }

  function key() {
    return sessionStorage.getItem(KEY) || '';
  }

  function jobHref(token) {
    return '/jobs/' + encodeURIComponent(token);
  }

  function when(iso) {
    if (!iso) return el('span', { class: 'muted' }, '—');
    const date = new Date(iso);
    return el('time', { datetime: iso, title: iso }, date.toLocaleString());
  }

  function duration(job) {
    if (!job.started) return '';
    const end = job.finished ? new Date(job.finished) : new Date();
    let seconds = Math.max(0, (end - new Date(job.started)) / 1000);
    if (seconds < 60) return seconds.toFixed(1) + ' s';
    const minutes = Math.floor(seconds / 60);
    seconds = Math.floor(seconds % 60);
    if (minutes < 60) return minutes + ' min ' + seconds + ' s';
    return Math.floor(minutes / 60) + ' h ' + (minutes % 60) + ' min';
  }

  function badge(status) {
    return el('span', { class: 'status status-' + status.toLowerCase() }, status);
  }

  class ApiError extends Error {
    constructor(status, reason) {
      super(reason || 'HTTP ' + status);
      this.status = status;
    }
  }

  // An API call with the admin key. A refused key sends the operator back to sign in.
  async function api(path, options = {}) {
    const url = new URL(path, location.origin);
    for (const [name, value] of Object.entries(options.query || {})) {
      if (value !== undefined && value !== null && value !== '') {
        url.searchParams.set(name, value);
      }
    }
    const headers = { 'X-ApiKey': key(), 'X-Holt-Source': 'ui' };
    let body;
    if (options.form) {
      body = new URLSearchParams(options.form);
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
    }
    const response = await fetch(url, {
      method: options.method || 'GET',
      headers,
      body,
      signal: options.signal,
      cache: 'no-store',
      credentials: 'omit',
    });
    if (!response.ok) {
      const reason = (await response.text()).trim();
      if (response.status === 403 && /admin key/.test(reason)) {
        sessionStorage.removeItem(KEY);
        signIn(reason);
      }
      throw new ApiError(response.status, reason);
    }
    return response;
  }

  async function apiJson(path, options) {
    return (await api(path, options)).json();
  }

  function problem(error) {
    return el('p', { class: 'problem', role: 'alert' }, error.message || String(error));
  }

  // ---- sign-in -----------------------------------------------------------------------------

  function signIn(message) {
    document.getElementById('nav').hidden = true;
    document.title = 'Sign in · Holt';
    const input = el('input', {
      type: 'password', id: 'admin-key', name: 'admin-key',
      autocomplete: 'current-password', required: true, autofocus: true,
    });
    const note = el('p', { class: 'problem', role: 'alert' }, message || '');
    const form = el('form', { class: 'sign-in', id: 'sign-in' },
      el('h1', {}, 'Sign in'),
      el('label', { for: 'admin-key' }, 'Admin key'),
      input,
      el('button', { type: 'submit' }, 'Sign in'),
      note);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const response = await fetch('/api/templates/list', {
        headers: { 'X-ApiKey': input.value }, cache: 'no-store', credentials: 'omit',
      }).catch((e) => ({ ok: false, text: async () => e.message }));
      if (!response.ok) {
        note.textContent = (await response.text()).trim() || 'sign-in failed';
        input.select();
        return;
      }
      sessionStorage.setItem(KEY, input.value);
      route();
    });
    render(form);
    input.focus();
  }

  // ---- jobs --------------------------------------------------------------------------------

  async function jobsPage() {
    document.title = 'Jobs · Holt';
    const params = new URLSearchParams(location.search);
    const filter = {
      template: params.get('template') || '',
      status: params.get('status') || '',
      before: params.get('before') || '',
    };
    const templateSelect = el('select', { id: 'filter-template', name: 'template' },
      el('option', { value: '' }, 'all templates'));
    const statusSelect = el('select', { id: 'filter-status', name: 'status' },
      el('option', { value: '' }, 'all statuses'),
      STATUSES.map((s) => el('option', { value: s }, s)));
    statusSelect.value = filter.status;
    const rows = el('tbody', { id: 'jobs' });
    const note = el('p', { class: 'muted', id: 'jobs-note' });
    const older = el('a', { id: 'older', hidden: true }, 'Older jobs →');
    const newest = el('a', { href: '/', hidden: !filter.before }, '← Newest jobs');
    render(
      el('h1', {}, 'Jobs'),
      el('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
        el('label', {}, 'Template ', templateSelect),
        el('label', {}, 'Status ', statusSelect),
        filter.before ? el('span', { class: 'muted' }, 'older than job ' + filter.before) : null),
      el('table', { class: 'jobs' },
        el('thead', {}, el('tr', {},
          ['Job', 'Template', 'Status', 'Source', 'Created', 'Started', 'Finished', 'Took']
            .map((h) => el('th', {}, h)))),
        rows),
      note,
      el('p', { class: 'pager' }, newest, ' ', older));

    function query(extra) {
      const q = new URLSearchParams();
      if (filter.template) q.set('template', filter.template);
      if (filter.status) q.set('status', filter.status);
      for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
      const text = q.toString();
      return text ? '/?' + text : '/';
    }

    for (const select of [templateSelect, statusSelect]) {
      select.addEventListener('change', () => {
        filter[select.name] = select.value;
        filter.before = '';
        history.replaceState(null, '', query());
        newest.hidden = true;
        refresh();
      });
    }

    let refreshing = false;
    async function refresh() {
      if (refreshing) return;
      refreshing = true;
      try {
        const page = await apiJson('/api/jobs/list', {
          query: { template: filter.template, status: filter.status, before: filter.before, limit: 50 },
        });
        rows.replaceChildren(...page.jobs.map((job) => el('tr', { 'data-token': job.token },
          el('td', {}, el('a', { href: jobHref(job.token) }, job.token)),
          el('td', {}, job.template),
          el('td', {}, badge(job.status)),
          el('td', {}, job.source),
          el('td', {}, when(job.created)),
          el('td', {}, when(job.started)),
          el('td', {}, when(job.finished)),
          el('td', {}, duration(job)))));
        note.textContent = page.jobs.length ? '' : 'No jobs.';
        older.hidden = !page.next;
        if (page.next) older.setAttribute('href', query({ before: page.next }));
      } catch (error) {
        note.textContent = 'Could not list jobs: ' + error.message;
      } finally {
        refreshing = false;
      }
    }

    apiJson('/api/templates/list').then((list) => {
      for (const t of list.templates) templateSelect.append(el('option', { value: t.name }, t.name));
      templateSelect.value = filter.template;
    }).catch(() => {});
    await refresh();
    // The newest page follows new jobs and status changes; an older page stays as it was read.
    if (!filter.before) {
      setInterval(() => {
        if (document.visibilityState === 'visible') refresh();
      }, LIST_REFRESH_MS);
    }
  }

  // ---- one job -----------------------------------------------------------------------------

  async function jobPage(token) {
    document.title = 'Job ' + token + ' · Holt';
    let job;
    try {
      job = await apiJson('/api/jobs/show', { query: { token } });
    } catch (error) {
      render(el('h1', {}, 'Job ' + token), problem(error));
      return;
    }
    const facts = el('dl', { class: 'facts' });
    const variables = el('tbody', { id: 'variables' });
    const cancel = el('button', { type: 'button', id: 'cancel', class: 'danger' }, 'Cancel');
    const rerun = el('button', { type: 'button', id: 'rerun' }, 'Re-run');
    const actionNote = el('p', { class: 'problem', role: 'alert', id: 'action-note' });
    const outputs = el('tbody', { id: 'outputs' });
    const outputsSection = el('section', { id: 'outputs-section', hidden: true },
      el('h2', {}, 'Outputs'),
      el('table', { class: 'variables' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Value'))),
        outputs));
    const log = el('div', { class: 'log', id: 'log' });
    const follow = el('span', { class: 'muted', id: 'follow-state' });
    render(
      el('h1', {}, 'Job ', el('span', { id: 'job-token' }, token)),
      facts,
      el('p', { class: 'actions' }, cancel, ' ', rerun),
      actionNote,
      outputsSection,
      el('h2', {}, 'Variables'),
      el('table', { class: 'variables' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Value'))),
        variables),
      el('h2', {}, 'Log ', follow),
      el('p', { class: 'log-tools' },
        el('button', { type: 'button', class: 'quiet', onclick: () => expandAll(true) }, 'Expand all'),
        ' ',
        el('button', { type: 'button', class: 'quiet', onclick: () => expandAll(false) }, 'Collapse all')),
      log);

    function show(current) {
      job = current;
      facts.replaceChildren(
        el('dt', {}, 'Template'), el('dd', {}, el('a', { href: '/templates#' + encodeURIComponent(job.template) }, job.template)),
        el('dt', {}, 'Status'), el('dd', { id: 'job-status' }, badge(job.status)),
        el('dt', {}, 'Source'), el('dd', {}, job.source),
        el('dt', {}, 'Created'), el('dd', {}, when(job.created)),
        el('dt', {}, 'Started'), el('dd', {}, when(job.started)),
        el('dt', {}, 'Finished'), el('dd', {}, when(job.finished)),
        el('dt', {}, 'Took'), el('dd', {}, duration(job) || '—'));
      variables.replaceChildren(...job.variables.map((v) => el('tr', {},
        el('td', {}, v.name),
        el('td', {}, v.secret ? el('span', { class: 'secret' }, '(secret)') : v.value))));
      if (!job.variables.length) {
        variables.append(el('tr', {}, el('td', { colspan: 2, class: 'muted' }, 'none')));
      }
      cancel.disabled = TERMINAL.has(job.status);
      if (TERMINAL.has(job.status) && outputsSection.hidden) showOutputs();
    }

    // A template's declared outputs: the final values of those variables, once the job ended.
    async function showOutputs() {
      try {
        const values = await apiJson('/api/jobs/outputs', { query: { token } });
        const names = Object.keys(values);
        if (!names.length) return;
        outputs.replaceChildren(...names.map((name) => el('tr', {},
          el('td', {}, name),
          el('td', {}, values[name] === null ? el('span', { class: 'muted' }, '(not set)') : String(values[name])))));
        outputsSection.hidden = false;
      } catch (_) {
        // A job of a template without outputs, or a server without them: nothing to show.
      }
    }
    show(job);

    async function reload() {
      try {
        show(await apiJson('/api/jobs/show', { query: { token } }));
      } catch (error) {
        actionNote.textContent = error.message;
      }
    }

    cancel.addEventListener('click', async () => {
      if (!confirm('Cancel job ' + token + '?')) return;
      cancel.disabled = true;
      try {
        const answer = await api('/api/jobs/cancel', { method: 'POST', query: { token } });
        actionNote.textContent = '';
        follow.textContent = (await answer.text()).trim();
      } catch (error) {
        actionNote.textContent = 'Cancel failed: ' + error.message;
      }
      reload();
    });

    rerun.addEventListener('click', async () => {
      rerun.disabled = true;
      try {
        const next = (await (await api('/api/jobs/rerun', { method: 'POST', query: { token } })).text()).trim();
        location.assign(jobHref(next));
      } catch (error) {
        actionNote.textContent = 'Re-run failed: ' + error.message;
        rerun.disabled = false;
      }
    });

    // The log as a tree of its scopes: one <details> per scope path, entries in order inside.
    const root = { body: log, children: new Map(), path: [] };
    function scopeOf(path) {
      let node = root;
      for (const name of path) {
        let child = node.children.get(name);
        if (!child) {
          const summary = el('summary', {}, name);
          const body = el('div', { class: 'scope-body' });
          const details = el('details', { class: 'scope', open: true }, summary, body);
          node.body.append(details);
          child = { body, summary, details, children: new Map(), path: node.path.concat(name) };
          node.children.set(name, child);
        }
        node = child;
      }
      return node;
    }
    function expandAll(open) {
      for (const details of log.querySelectorAll('details')) details.open = open;
    }
    let entries = 0;
    function addEntry(entry) {
      const level = String(entry.level).toLowerCase();
      const scope = scopeOf(entry.scope || []);
      scope.body.append(el('div', { class: 'entry level-' + level, 'data-sequence': entry.sequence },
        el('time', { datetime: entry.time, title: entry.time }, String(entry.time).slice(11, 23)),
        el('span', { class: 'level' }, entry.level),
        el('span', { class: 'text' }, entry.text)));
      // A scope's summary carries the worst level inside it, so a collapsed tree still shows
      // where the warnings and errors are.
      if (level === 'warn' || level === 'error') {
        let node = root;
        for (const name of entry.scope || []) {
          node = node.children.get(name);
          if (level === 'error' || !node.summary.classList.contains('has-error')) {
            node.summary.classList.add('has-' + level);
          }
        }
      }
      entries += 1;
      if (entries === 1 && job.status === 'Pending') reload();
    }

    // Follows the log as it is written: one streamed request, continued at the next entry
    // should the stream end before the job does.
    async function followLog() {
      let offset = 0;
      for (;;) {
        follow.textContent = 'following';
        try {
          const response = await api('/api/jobs/logs', {
            query: { token, format: 'ndjson', follow: 'true', offset },
          });
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value;
            let newline;
            while ((newline = buffer.indexOf('\n')) >= 0) {
              const line = buffer.slice(0, newline);
              buffer = buffer.slice(newline + 1);
              if (!line) continue;
              const entry = JSON.parse(line);
              offset = entry.sequence + 1;
              addEntry(entry);
            }
          }
          const status = (await (await api('/api/jobs/status', { query: { token } })).text()).trim();
          if (TERMINAL.has(status)) break;
        } catch (error) {
          follow.textContent = 'log interrupted (' + error.message + '); retrying';
          await new Promise((resolve) => setTimeout(resolve, 2000));
        }
      }
      follow.textContent = entries ? '' : 'empty';
    }

    // Follows the status: a waiting call answers when the job ends, or after a few seconds
    // with the status then (so Pending turns Executing on the page).
    async function followStatus() {
      while (!TERMINAL.has(job.status)) {
        try {
          const status = (await (await api('/api/jobs/status', { query: { token, wait: 5 } })).text()).trim();
          if (status !== job.status) await reload();
        } catch (error) {
          await new Promise((resolve) => setTimeout(resolve, 2000));
        }
      }
    }

    followStatus();
    await followLog();
    await reload();
  }

  // ---- templates ---------------------------------------------------------------------------

  async function templatesPage() {
    document.title = 'Templates · Holt';
    let list;
    try {
      list = await apiJson('/api/templates/list');
    } catch (error) {
      render(el('h1', {}, 'Templates'), problem(error));
      return;
    }
    render(el('h1', {}, 'Templates'),
      list.templates.length ? list.templates.map(templateCard) : el('p', { class: 'muted' }, 'No templates are loaded.'));
    if (location.hash) {
      let name = location.hash.slice(1);
      try {
        name = decodeURIComponent(name);
      } catch (_) {
        // A malformed escape: look the name up as written.
      }
      const target = document.getElementById('template-' + name);
      if (target) target.scrollIntoView();
    }
  }

  function targetsText(targets) {
    const parts = [];
    if (targets.servers.length) parts.push('servers: ' + targets.servers.join(', '));
    if (targets.roles.length) parts.push('roles: ' + targets.roles.join(', '));
    if (targets.environments.length) parts.push('environments: ' + targets.environments.join(', '));
    return parts.length ? parts.join('; ') : 'holtd\'s own host';
  }

  // A pattern as JavaScript reads it, anchored like the server anchors it; null when
  // JavaScript cannot read it (the server still checks every value).
  function compilePattern(source) {
    if (!source) return null;
    try {
      return new RegExp('^(?:' + source + ')$', 'u');
    } catch (_) {
      return null;
    }
  }

  function templateCard(t) {
    const fields = t.variables.map((v) => {
      const id = 'var-' + t.name + '-' + v.name;
      let input;
      if (v.allowed.length) {
        input = el('select', { id, name: v.name },
          v.required && !v.has_default ? el('option', { value: '' }, 'choose…') : el('option', { value: '' }, v.has_default ? '(default)' : '(none)'),
          v.allowed.map((a) => el('option', { value: a }, a)));
        if (v.default !== null && v.default !== undefined) input.value = v.default;
      } else {
        input = el('input', {
          id, name: v.name, type: v.secret ? 'password' : 'text',
          autocomplete: v.secret ? 'new-password' : 'off',
          placeholder: v.secret ? (v.has_default ? '(secret default)' : '') : (v.default || ''),
        });
      }
      const rules = [];
      if (v.required && !v.has_default) rules.push('required');
      if (v.pattern) rules.push('pattern ' + v.pattern);
      if (v.secret) rules.push('secret');
      const error = el('span', { class: 'field-error', id: id + '-error' });
      return {
        decl: v, input, error,
        row: el('div', { class: 'field' },
          el('label', { for: id }, v.name),
          input,
          el('span', { class: 'muted' }, [v.description, rules.join(', ')].filter(Boolean).join(' — ')),
          error),
      };
    });
    const note = el('p', { class: 'problem', role: 'alert' });
    // Variables the template does not declare, when it takes them: NAME=value, one per line.
    const extra = t.allow_undeclared_variables
      ? el('textarea', { name: 'extra-variables', rows: 3, placeholder: 'NAME=value, one per line' })
      : null;
    const form = el('form', { class: 'trigger', 'data-template': t.name, novalidate: true },
      fields.map((f) => f.row),
      extra ? el('div', { class: 'field' }, el('label', {}, 'Other variables'), extra) : null,
      el('button', { type: 'submit' }, 'Trigger ' + t.name),
      note);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      note.textContent = '';
      // The declared rules, checked before anything is sent.
      const pairs = [['template', t.name]];
      let valid = true;
      for (const f of fields) {
        const value = f.input.value;
        let reason = '';
        if (value === '') {
          if (f.decl.required && !f.decl.has_default) reason = f.decl.name + ' is required';
        } else if (f.decl.allowed.length && !f.decl.allowed.includes(value)) {
          reason = f.decl.name + ' must be one of: ' + f.decl.allowed.join(', ');
        } else {
          const pattern = compilePattern(f.decl.pattern);
          if (pattern && !pattern.test(value)) reason = f.decl.name + ' must match the pattern ' + f.decl.pattern;
        }
        f.error.textContent = reason;
        f.input.setAttribute('aria-invalid', reason ? 'true' : 'false');
        if (reason) valid = false;
        else if (value !== '') pairs.push([f.decl.name, value]);
      }
      if (extra) {
        for (const line of extra.value.split('\n')) {
          if (!line.trim()) continue;
          const at = line.indexOf('=');
          if (at < 1) {
            valid = false;
            note.textContent = 'Not sent: other variables are NAME=value lines, not ' + JSON.stringify(line);
            break;
          }
          pairs.push([line.slice(0, at).trim(), line.slice(at + 1)]);
        }
      }
      if (!valid) {
        if (!note.textContent) note.textContent = 'Not sent: fix the marked variables.';
        return;
      }
      note.textContent = '';
      try {
        const token = (await (await api('/api/jobs/trigger', { method: 'POST', form: pairs })).text()).trim();
        location.assign(jobHref(token));
      } catch (error) {
        note.textContent = 'Refused: ' + error.message;
      }
    });
    const policy = [];
    if (t.max_concurrent) policy.push('at most ' + t.max_concurrent + ' at once');
    if (t.timeout_seconds) policy.push('timeout ' + t.timeout_seconds + ' s');
    if (t.has_key) policy.push('has its own API key');
    if (t.schedule) {
      policy.push('runs on schedule ' + t.schedule.cron + ' (' + t.schedule.timezone + ', missed: ' + t.schedule.missed + ')');
    }
    if (t.outputs && t.outputs.length) policy.push('outputs: ' + t.outputs.join(', '));
    return el('section', { class: 'template', id: 'template-' + t.name },
      el('h2', {}, t.name),
      t.description ? el('p', {}, t.description) : null,
      el('p', { class: 'muted' }, 'Targets: ' + targetsText(t.targets) + (policy.length ? '; ' + policy.join('; ') : '')),
      t.variables.length ? el('table', { class: 'declarations' },
        el('thead', {}, el('tr', {}, ['Variable', 'Description', 'Required', 'Default', 'Allowed', 'Pattern']
          .map((h) => el('th', {}, h)))),
        el('tbody', {}, t.variables.map((v) => el('tr', {},
          el('td', {}, v.name),
          el('td', {}, v.description || ''),
          el('td', {}, v.required ? 'yes' : 'no'),
          el('td', {}, v.secret ? (v.has_default ? '(secret)' : '') : (v.default ?? '')),
          el('td', {}, v.allowed.join(', ')),
          el('td', {}, v.pattern || ''))))) : el('p', { class: 'muted' }, 'No declared variables.'),
      t.allow_api ? form : el('p', { class: 'muted' }, 'This template is not allowed for API use, so it cannot be triggered here.'));
  }

  // ---- servers, roles, environments --------------------------------------------------------

  async function serversPage() {
    document.title = 'Servers · Holt';
    const list = (kind) => apiJson('/api/infrastructure/' + kind + '/list', { method: 'POST' });
    let servers, roles, environments;
    try {
      [servers, roles, environments] = await Promise.all([list('servers'), list('roles'), list('environments')]);
    } catch (error) {
      render(el('h1', {}, 'Servers'), problem(error));
      return;
    }
    const vars = (v) => Object.entries(v || {}).map(([k, value]) => k + ' = ' + (typeof value === 'string' ? value : JSON.stringify(value))).join('; ');
    const table = (id, heads, items, cells) => items.length
      ? el('table', { id },
        el('thead', {}, el('tr', {}, heads.map((h) => el('th', {}, h)))),
        el('tbody', {}, items.map((item) => el('tr', {}, cells(item).map((c) => el('td', {}, c))))))
      : el('p', { class: 'muted', id }, 'None.');
    render(
      el('h1', {}, 'Servers'),
      table('servers', ['Name', 'Type', 'Host', 'Port', 'Credentials', 'Roles', 'Environments', 'Active', 'Variables'], servers,
        (s) => [s.name, s.serverType, s.hostName || '', s.serverType === 'ssh' ? String(s.port ?? '') : '', s.credentialsName || '',
          (s.roles || []).join(', '), (s.environments || []).join(', '), s.active ? 'yes' : 'no', vars(s.variables)]),
      el('h2', {}, 'Roles'),
      table('roles', ['Name', 'Variables'], roles, (r) => [r.name, vars(r.variables)]),
      el('h2', {}, 'Environments'),
      table('environments', ['Name', 'Parent', 'Variables'], environments,
        (e) => [e.name, e.parentName || '', vars(e.variables)]));
  }

  // ---- routing -----------------------------------------------------------------------------

  function route() {
    if (!key()) {
      signIn();
      return;
    }
    const nav = document.getElementById('nav');
    nav.hidden = false;
    const path = location.pathname;
    for (const link of nav.querySelectorAll('a')) {
      const page = link.dataset.page;
      const current = (page === 'jobs' && (path === '/' || path.startsWith('/jobs/')))
        || path === '/' + page;
      link.classList.toggle('current', current);
    }
    const job = path.match(/^\/jobs\/([A-Za-z0-9]+)$/);
    if (path === '/') jobsPage();
    else if (path === '/templates') templatesPage();
    else if (path === '/servers') serversPage();
    else if (job) jobPage(job[1]);
    else render(el('p', {}, 'No such page.'));
  }

  document.getElementById('sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    location.assign('/');
  });
  route();
})();
