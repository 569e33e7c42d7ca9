// JVM tests of profile import through the generated Kotlin bindings: a .mobileconfig written
// here, imported, checked field by field and validated. Run by scripts/test-kotlin.sh.
package org.roam.core

import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlin.test.fail

const val PSK_MOBILECONFIG = """<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>PayloadType</key><string>com.apple.vpn.managed</string>
      <key>UserDefinedName</key><string>Kotlin PSK</string>
      <key>VPNType</key><string>IKEv2</string>
      <key>IKEv2</key>
      <dict>
        <key>RemoteAddress</key><string>vpn.example.org</string>
        <key>RemoteIdentifier</key><string>vpn.example.org</string>
        <key>LocalIdentifier</key><string>phone@example.org</string>
        <key>AuthenticationMethod</key><string>SharedSecret</string>
        <key>SharedSecret</key><string>kotlin-secret</string>
        <key>MTU</key><integer>1380</integer>
        <key>OnDemandEnabled</key><integer>1</integer>
      </dict>
    </dict>
  </array>
</dict>
</plist>
"""

class FfiImportTests {
    fun testAMobileconfigImportsIntoRecordsThatValidate() {
        val got = importProfile(PSK_MOBILECONFIG.toByteArray(), "vpn.mobileconfig", null)
        assertEquals("Kotlin PSK", got.name)
        assertEquals("vpn.example.org", got.config.server.address)
        assertEquals(500.toUShort(), got.config.server.port)
        assertEquals("vpn.example.org", got.config.server.id)
        val auth = got.config.auth as? AuthConfig.Psk ?: fail("not PSK: ${got.config.auth}")
        assertEquals("phone@example.org", auth.localId)
        assertEquals(1380.toUShort(), got.config.tunnel?.mtu)
        assertEquals(listOf("unsupported: OnDemandEnabled: 1 (connecting on demand is up to the app embedding Roam)"), got.findings)
        assertNull(got.problem)
        validateConfig(got.config)
        assertTrue("kotlin-secret" !in got.toString(), "the PSK stays out of toString()")
    }

    fun testAnUnknownFileIsAConfigException() {
        val e = assertFailsWith<VpnException.Config> { importProfile("hello".toByteArray(), null, null) }
        assertEquals("import", e.key)
    }
}
