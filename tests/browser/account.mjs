// The citizen's account security in a real browser: with a virtual authenticator attached
// through the Chrome DevTools Protocol (CTAP2, built into the device, resident keys, user
// verification), the citizen registers a passkey on the security page, logs out, and logs in
// again with the passkey alone; the passkey shows in the list and the usage history.

/**
 * @param {object} t what run.mjs shares: browser(viewport), base, check, weigh, eidLogin, who
 */
export async function accountTests({ browser, base, check, weigh, eidLogin, who }) {
  const ctx = await browser({ width: 390, height: 844 });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true,
    },
  });

  await eidLogin(page, who, 'citizen');
  await page.goto(`${base}/portal/me/security`);
  await page.locator('#passkey-add').waitFor({ state: 'visible' });
  check(await page.locator('#passkey-list li').count() === 0, 'no passkey before registering one');
  await weigh(page, 'me-security');
  await Promise.all([page.waitForNavigation(), page.click('#passkey-add')]);
  await page.locator('#passkey-msg').waitFor();
  check(await page.locator('#passkey-msg').getAttribute('data-code') === 'passkey_added',
    'the passkey is registered through the browser');
  check(await page.locator('#passkey-list li').count() === 1, 'the passkey is listed');
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(credentials.length === 1 && credentials[0].isResidentCredential, 'the authenticator holds one resident key');

  // Log out, then back in with the passkey: no ID number, no passcode.
  await Promise.all([page.waitForURL(/\/portal$/), page.click('form[action="/portal/logout"] button')]);
  await Promise.all([page.waitForURL(/\/authorize/), page.click('a[href="/portal/login?as=citizen"]')]);
  await page.locator('#passkey-button').waitFor({ state: 'visible' });
  await Promise.all([page.waitForURL(/\/portal\/me$/), page.click('#passkey-button')]);
  check(page.url().endsWith('/portal/me'), 'logged in again with the passkey');
  const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(after.credentials[0].signCount >= 1, 'the authenticator signed a login');

  await page.goto(`${base}/portal/me/account?lang=en`);
  const history = await page.locator('table').textContent();
  check(history.includes('Added passkey'), 'the registration is in the usage history');
  await weigh(page, 'me-account-passkey');
  await ctx.close();
}
