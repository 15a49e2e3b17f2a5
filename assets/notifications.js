// The dashboard's notifications: on each project card, add a notification (Slack, Discord,
// Teams, Mattermost, ntfy or a signed webhook), send a test, see its delivery attempts, pause,
// resume and remove it. app.js announces each card it builds with a `gpt:project-card` event.
// Like app.js, the DOM is built with createElement and textContent only.
'use strict';

(function () {
  const KINDS = ['slack', 'discord', 'teams', 'mattermost', 'ntfy', 'webhook'];

  const { api, el } = window.Dashboard;

  function when(iso) {
    if (!iso) return 'never';
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function list(text) {
    const items = text.split(',').map((s) => s.trim()).filter(Boolean);
    return items.length ? items : undefined;
  }

  /** The one-time reveal dialog of app.js, for a webhook's signing secret. */
  function revealSecret(context, value) {
    const dialog = document.getElementById('reveal');
    document.getElementById('reveal-title').textContent = 'Signing secret';
    document.getElementById('reveal-context').textContent = context;
    document.getElementById('reveal-value').textContent = value;
    document.getElementById('reveal-copied').textContent = '';
    if (typeof dialog.showModal === 'function') dialog.showModal();
    else dialog.setAttribute('open', '');
  }

  function base(project) {
    return '/projects/' + encodeURIComponent(project) + '/notifications';
  }

  function mount(card, project) {
    const box = el('div', { class: 'notifications' });
    const result = el('p', { class: 'notify-message', role: 'status', hidden: '' });
    const kind = el('select', { class: 'notify-kind', name: 'kind', 'aria-label': 'Kind' }, ...KINDS.map((k) => el('option', { value: k, text: k })));
    const url = el('input', { class: 'notify-url', name: 'url', type: 'url', required: '', placeholder: 'https://hooks.slack.com/services/...', 'aria-label': 'Receiver URL', autocomplete: 'off' });
    const branches = el('input', { class: 'notify-branches', name: 'branches', placeholder: 'branches: *, !dependabot/*', 'aria-label': 'Branch patterns, comma-separated' });
    const authors = el('input', { class: 'notify-authors', name: 'excludeAuthors', placeholder: 'leave out: dependabot[bot]', 'aria-label': 'Authors to leave out, comma-separated' });
    const label = el('input', { class: 'notify-label', name: 'label', maxlength: '100', placeholder: 'label', 'aria-label': 'Label' });
    const form = el(
      'form',
      { class: 'notify-form', onsubmit: (ev) => { ev.preventDefault(); add(); } },
      kind, url, branches, authors, label,
      el('button', { type: 'submit', class: 'notify-add', text: 'Add notification' }),
    );
    form.hidden = true;
    const toggle = el('button', { type: 'button', class: 'secondary small notify-new', text: '+ Notification', onclick: () => { form.hidden = !form.hidden; if (!form.hidden) url.focus(); } });

    function say(text, bad) {
      result.textContent = text;
      result.className = 'notify-message' + (bad ? ' error' : '');
      result.hidden = !text;
    }

    async function add() {
      const body = { kind: kind.value, url: url.value.trim(), label: label.value.trim() || undefined, branches: list(branches.value), excludeAuthors: list(authors.value) };
      try {
        const created = await api('POST', base(project), body);
        for (const input of [url, branches, authors, label]) input.value = '';
        form.hidden = true;
        say('');
        if (created.secret) revealSecret('Verify the webhook\'s Standard Webhooks signature with it.', created.secret);
        await load();
      } catch (e) {
        say('Could not add the notification: ' + e.message, true);
      }
    }

    async function act(n, what) {
      try {
        if (what === 'remove') {
          if (!confirm('Remove the ' + n.kind + ' notification ' + (n.label || n.url) + '?')) return;
          await api('DELETE', base(project) + '/' + n.id);
        } else {
          await api('POST', base(project) + '/' + n.id + '/' + what);
        }
        say('');
        await load();
      } catch (e) {
        say('Could not ' + what + ' the notification: ' + e.message, true);
      }
    }

    async function test(n) {
      try {
        const answer = await api('POST', base(project) + '/' + n.id + '/test');
        say('Test message sent: the receiver answered ' + answer.status + ' in ' + answer.ms + ' ms.');
      } catch (e) {
        say('The test message failed: ' + e.message, true);
      }
      // The test changed the notification's last delivery (or failures): show it as stored,
      // with its log open.
      await load(n.id);
    }

    /** The list at `path`, or null once `into` says why there is none to show (failed or empty). */
    async function loadList(into, path, what, emptyText) {
      let list;
      try {
        list = await api('GET', path);
      } catch (e) {
        into.replaceChildren(el('p', { class: 'status error', text: 'Could not load ' + what + ': ' + e.message }));
        return null;
      }
      if (list.length === 0) {
        into.replaceChildren(el('p', { class: 'status', text: emptyText }));
        return null;
      }
      return list;
    }

    async function showLog(n, log) {
      log.hidden = false;
      const attempts = await loadList(log, base(project) + '/' + n.id + '/deliveries', 'deliveries', 'No deliveries yet.');
      if (!attempts) return;
      log.replaceChildren(el('ol', { class: 'delivery-list' }, ...attempts.map((a) => el(
        'li',
        { class: 'delivery' + (a.status >= 200 && a.status < 300 ? ' ok' : ' bad') },
        el('time', { datetime: a.at, text: when(a.at) }),
        el('span', { class: 'what', text: a.pushId ? 'push ' + a.pushId.slice(0, 8) + ' · attempt ' + a.attempt : 'test' }),
        el('span', { class: 'status-code', text: a.status === null ? 'no answer' : 'HTTP ' + a.status }),
        el('span', { class: 'ms', text: a.ms + ' ms' }),
        a.error ? el('span', { class: 'error', text: a.error }) : null,
      ))));
    }

    // The items last rendered, by notification id: load() reopens a log in the fresh list.
    let rendered = new Map();

    function item(n) {
      const log = el('div', { class: 'delivery-log', hidden: '' });
      rendered.set(n.id, { n, log });
      return el(
        'li',
        { class: 'notification' + (n.enabled ? '' : ' paused'), 'data-notification': String(n.id) },
        el(
          'div',
          { class: 'notification-head' },
          el('span', { class: 'badge', text: n.kind }),
          el('span', { class: 'label', text: n.label || '(no label)' }),
          el('code', { class: 'url', text: n.url }),
          el('span', { class: 'filters', text: (n.branches.length ? n.branches.join(', ') : 'every branch and tag') + (n.excludeAuthors.length ? ' · not ' + n.excludeAuthors.join(', ') : '') }),
          el('span', { class: 'meta', text: (n.enabled ? 'active' : 'paused: ' + (n.disabledReason || '')) + ' · last delivery ' + when(n.lastDeliveryAt) + (n.failuresInARow ? ' · ' + n.failuresInARow + ' failures in a row' : '') }),
        ),
        el(
          'div',
          { class: 'actions' },
          el('button', { type: 'button', class: 'small notify-test', text: 'Send test', onclick: () => test(n) }),
          el('button', { type: 'button', class: 'secondary small notify-log', text: 'Deliveries', onclick: () => (log.hidden ? showLog(n, log) : (log.hidden = true)) }),
          n.enabled
            ? el('button', { type: 'button', class: 'secondary small notify-pause', text: 'Pause', onclick: () => act(n, 'pause') })
            : el('button', { type: 'button', class: 'secondary small notify-resume', text: 'Resume', onclick: () => act(n, 'resume') }),
          el('button', { type: 'button', class: 'danger small notify-remove', text: 'Remove', onclick: () => act(n, 'remove') }),
        ),
        log,
      );
    }

    async function load(openLogOf) {
      const all = await loadList(box, base(project), 'notifications', 'No notifications. Add one to send every summary to Slack, Discord, Teams, Mattermost, ntfy or a webhook.');
      if (!all) return;
      rendered = new Map();
      box.replaceChildren(el('ul', { class: 'notification-list' }, ...all.map(item)));
      const open = rendered.get(openLogOf);
      if (open) await showLog(open.n, open.log);
    }

    card.append(
      el('div', { class: 'notify-head' }, el('h4', { text: 'Notifications' }), toggle),
      form,
      result,
      box,
    );
    load();
  }

  document.addEventListener('gpt:project-card', (ev) => mount(ev.detail.card, ev.detail.name));
})();
