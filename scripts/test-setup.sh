#!/usr/bin/env bash
# Installs what the test suite needs and is not an npm package: real peers and
# tools the tests drive (swaks as a submitting client, openssl, gnupg, postfix
# for the benchmark comparison, python3 as an independent MIME parser, strace
# to see fsyncs happen, chromium for the web pages).
# Idempotent: installs only what is missing.
set -euo pipefail

need=()
command -v swaks >/dev/null || need+=(swaks)
# swaks needs Net::SSLeay for --tls (only a Recommends of the package).
perl -MNet::SSLeay -e1 2>/dev/null || need+=(libnet-ssleay-perl)
command -v openssl >/dev/null || need+=(openssl)
command -v gpg >/dev/null || need+=(gnupg)
command -v postfix >/dev/null || [ -x /usr/sbin/postfix ] || need+=(postfix)
# python3's email package is the independent MIME parser of the long-line repair tests.
command -v python3 >/dev/null || need+=(python3)
# strace watches the store's fsyncs (test/store/sqlite-fsync.test.ts).
command -v strace >/dev/null || need+=(strace)
# systemd-analyze checks the unit in deploy/ (test/deploy/service.test.ts).
command -v systemd-analyze >/dev/null || need+=(systemd)
# Debian's Chromium is the real browser of the web tests (test/helpers/browser.ts drives
# it with playwright-core, which never downloads a browser of its own); a font so its
# screenshots show text.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)
# DNSSEC test zones (test/helpers/dnssec-zone.ts): knot serves them, ldns-keygen and
# ldns-signzone sign them, unbound validates them (the AD bit DANE relies on). The
# tests start their own instances on free loopback ports; the system services stay off.
[ -x /usr/sbin/knotd ] || need+=(knot)
command -v ldns-signzone >/dev/null || need+=(ldnsutils)
[ -x /usr/sbin/unbound ] || need+=(unbound)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "test:setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  # postfix asks debconf questions; answer "No configuration" and never start it.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
  # Installing knot/unbound starts their system services where an init system runs
  # them; the tests need neither (and a system unbound would take port 53): stop and
  # disable the ones just installed, never ones the machine already had.
  for svc in knot unbound; do
    case " ${need[*]} " in *" $svc "*) ;; *) continue ;; esac
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif [ -x "/etc/init.d/$svc" ]; then
      $SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi
# playwright-core downloads nothing at install; this keeps it so should that change.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -d node_modules ]; then npm ci; fi
echo "test:setup: ok"
