import BackupService

await BackupDaemon.runFromCommandLine()
