// Passkey registration on the citizen portal's security page. Where the browser can use
// passkeys it shows the button; a click asks this server for the options (with the page's CSRF
// token), lets the browser create the key, and posts the answer as an ordinary form, so the
// server's page with its confirmation or error follows. Nothing else on the page needs this.
(function () {
  "use strict";
  var box = document.getElementById("passkey-register");
  if (!box || !window.PublicKeyCredential || !navigator.credentials) return;
  var form = document.getElementById("passkey-form");
  var button = document.getElementById("passkey-add");
  var status = document.getElementById("passkey-status");
  var en = document.documentElement.lang === "en";
  box.hidden = false;

  function fromB64url(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function toB64url(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function say(vi, english) { status.textContent = en ? english : vi; }

  button.addEventListener("click", function () {
    button.disabled = true;
    say("Đang chờ thiết bị tạo khóa truy cập…", "Waiting for the device to create the passkey…");
    fetch("/portal/me/security/passkey/options", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "csrf=" + encodeURIComponent(form.elements.csrf.value),
      credentials: "same-origin"
    })
      .then(function (r) {
        if (!r.ok) throw new Error("options " + r.status);
        return r.json();
      })
      .then(function (o) {
        var pk = o.publicKey;
        pk.challenge = fromB64url(pk.challenge);
        pk.user.id = fromB64url(pk.user.id);
        pk.excludeCredentials = (pk.excludeCredentials || []).map(function (c) {
          return { type: c.type, id: fromB64url(c.id) };
        });
        form.elements.challenge_id.value = o.challenge_id;
        return navigator.credentials.create({ publicKey: pk });
      })
      .then(function (cred) {
        form.elements.client_data_json.value = toB64url(cred.response.clientDataJSON);
        form.elements.attestation_object.value = toB64url(cred.response.attestationObject);
        form.submit();
      })
      .catch(function () {
        button.disabled = false;
        say("Không tạo được khóa truy cập trên thiết bị này; hãy thử lại hoặc dùng thiết bị khác.",
            "The passkey could not be created on this device; try again or use another device.");
      });
  });
})();
