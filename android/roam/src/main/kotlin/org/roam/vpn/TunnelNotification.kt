// Android-only: the foreground-service notification showing the tunnel's state.
package org.roam.vpn

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.content.Context

class TunnelNotification(private val context: Context) {
    private val manager = context.getSystemService(NotificationManager::class.java)

    init {
        manager.createNotificationChannel(
            NotificationChannel(CHANNEL, "VPN status", NotificationManager.IMPORTANCE_LOW),
        )
    }

    fun build(text: String): Notification =
        Notification.Builder(context, CHANNEL)
            .setSmallIcon(android.R.drawable.ic_lock_lock)
            .setContentTitle("Roam")
            .setContentText(text)
            .setOngoing(true)
            .build()

    fun update(text: String) = manager.notify(ID, build(text))

    companion object {
        const val ID = 1
        private const val CHANNEL = "roam-status"
    }
}
