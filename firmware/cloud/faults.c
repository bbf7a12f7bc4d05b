/* sparkcloud: the fault modes a diagnosis has to tell apart: a captive portal answering instead of the
 * cloud, a cloud that stalls after its nonce, and the device key the cloud holds (--wrong-key). */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cloud.h"

static const char portal_page[] =
    "HTTP/1.1 302 Found\r\n"
    "Location: http://login.hotspot.example/portal?orig=device.spark.io%3A5683\r\n"
    "Content-Type: text/html\r\n"
    "Cache-Control: no-cache\r\n"
    "Connection: close\r\n"
    "Content-Length: 330\r\n"
    "\r\n"
    "<html><head><title>Guest network</title></head><body>\r\n"
    "<h1>Welcome to the guest network</h1>\r\n"
    "<p>Please accept the terms of use to continue.</p>\r\n"
    "<form method=\"post\" action=\"http://login.hotspot.example/accept\">\r\n"
    "<input type=\"checkbox\" name=\"terms\"> I agree<br>\r\n"
    "<input type=\"submit\" value=\"Connect\"></form>\r\n"
    "</body></html>\r\n";

/* Reads and drops what the device sends until until_ms or its close; returns the byte count. */
static size_t swallow(conn *c, uint64_t until_ms, bool *closed)
{
    uint8_t junk[512];
    size_t total = 0;
    *closed = false;
    for (;;) {
        uint64_t t = sw_now_ms();
        if (t >= until_ms)
            return total;
        int r = sw_wait_readable(c->fd, (int)(until_ms - t > 1000 ? 1000 : until_ms - t));
        if (r < 0)
            return total;
        if (r == 0)
            continue;
        ssize_t k = recv(c->fd, junk, sizeof junk, 0);
        if (k <= 0) {
            *closed = true;
            return total;
        }
        total += (size_t)k;
    }
}

static void captive_portal(conn *c)
{
    bool closed;
    CLOG(c, "captive portal: HTTP redirect sent instead of a nonce");
    sw_send_all(c->fd, (const uint8_t *)portal_page, sizeof portal_page - 1);
    size_t total = swallow(c, sw_now_ms() + 5000, &closed);
    CLOG(c, "captive portal: %zu bytes from the device, closing", total);
    c->outcome = "not-spark";
}

/* The nonce went out; nothing more is sent until the handshake's global timeout. */
static void stall(conn *c)
{
    bool closed;
    CLOG(c, "stalling: nothing more will be sent");
    size_t total = swallow(c, c->accepted + sc_opt.handshake_timeout_ms, &closed);
    if (closed)
        CLOG(c, "the device closed the connection (%zu bytes received)", total);
    else
        CLOG(c, "handshake not finished after %llu ms, closing", (unsigned long long)sc_opt.handshake_timeout_ms);
    c->outcome = "stalled";
}

bool sc_fault_before_nonce(conn *c)
{
    if (sc_opt.mode != M_CAPTIVE)
        return false;
    captive_portal(c);
    return true;
}

bool sc_fault_after_nonce(conn *c)
{
    if (sc_opt.mode != M_STALL)
        return false;
    stall(c);
    return true;
}

/* The public key the cloud holds for a device: --wrong-key for every device, --device-key or keyfile
 * lines, or DIR/<id>.pub.pem of --keys-dir. NULL when none is on file. */
const uint8_t *sc_device_key(const char *id_hex, size_t *len, char *path, size_t pcap)
{
    static sw_keybuf kb;
    if (sc_opt.have_wrong_key) {
        *len = sc_opt.wrong_key.len;
        snprintf(path, pcap, "(--wrong-key)");
        return sc_opt.wrong_key.der;
    }
    for (size_t i = 0; i < sc_opt.ndevkeys; i++) {
        if (strcmp(sc_opt.devkeys[i].id, id_hex) == 0) {
            *len = sc_opt.devkeys[i].key.len;
            snprintf(path, pcap, "(--device-key or keyfile)");
            return sc_opt.devkeys[i].key.der;
        }
    }
    if (sc_opt.keys_dir == NULL)
        return NULL;
    snprintf(path, pcap, "%s/%s.pub.pem", sc_opt.keys_dir, id_hex);
    if (access(path, F_OK) != 0)
        return NULL;
    if (sw_load_public_key(path, "device public key", &kb) < 0)
        return NULL;
    *len = kb.len;
    return kb.der;
}
