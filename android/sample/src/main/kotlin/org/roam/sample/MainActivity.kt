// Android-only sample: import a Roam profile (TOML, as `roam connect` reads it), connect and
// disconnect through RoamVpnService.
package org.roam.sample

import android.app.Activity
import android.content.Intent
import android.net.VpnService
import android.os.Bundle
import android.widget.Button
import android.widget.LinearLayout
import android.widget.TextView
import org.roam.core.NetworkSettings
import org.roam.core.PlatformCallbacks
import org.roam.core.VpnEvent
import org.roam.core.VpnException
import org.roam.vpn.ProfileStore
import org.roam.vpn.RoamVpnService

class MainActivity : Activity() {
    private lateinit var status: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        status = TextView(this).apply { text = if (ProfileStore(this@MainActivity).load() != null) "Profile imported" else "No profile" }
        val layout = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL }
        layout.addView(status)
        layout.addView(Button(this).apply { text = "Import profile"; setOnClickListener { pickProfile() } })
        layout.addView(Button(this).apply { text = "Connect"; setOnClickListener { connect() } })
        layout.addView(Button(this).apply { text = "Disconnect"; setOnClickListener { RoamVpnService.disconnect(this@MainActivity) } })
        setContentView(layout)
    }

    private fun pickProfile() {
        val intent = Intent(Intent.ACTION_OPEN_DOCUMENT).addCategory(Intent.CATEGORY_OPENABLE).setType("*/*")
        startActivityForResult(intent, PICK_PROFILE)
    }

    private fun connect() {
        // The system asks the user once; null means the app may already run a VPN.
        val consent = VpnService.prepare(this)
        if (consent != null) startActivityForResult(consent, VPN_CONSENT) else RoamVpnService.connect(this)
    }

    @Deprecated("Deprecated in Java")
    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        super.onActivityResult(requestCode, resultCode, data)
        if (resultCode != RESULT_OK) return
        when (requestCode) {
            VPN_CONSENT -> RoamVpnService.connect(this)
            PICK_PROFILE -> data?.data?.let { uri ->
                val text = contentResolver.openInputStream(uri)?.use { it.readBytes().decodeToString() } ?: return
                status.text = try {
                    // The core validates it; an error names the key (e.g. "auth.psk: missing").
                    ProfileStore(this).save(text, NoPlatform)
                    "Profile imported"
                } catch (e: VpnException.Config) {
                    "Profile refused: ${e.key}: ${e.problem}"
                } catch (e: VpnException) {
                    "Profile refused: ${e.message}"
                }
            }
        }
    }

    /** Validation only: nothing is started, so nothing is called. */
    private object NoPlatform : PlatformCallbacks {
        override fun protectSocket(fd: Int) = false
        override fun applyNetworkSettings(settings: NetworkSettings) = false
        override fun onEvent(event: VpnEvent) {}
    }

    private companion object {
        const val VPN_CONSENT = 1
        const val PICK_PROFILE = 2
    }
}
