# ec2-reset-access, Mode=NewPassword: the one-shot boot action that runbooks/windows-reset.sh puts in
# EC2Launch v2's agent-config.yml (an executeScript task, postReady stage, runAs localSystem:
# https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ec2launch-v2-settings.html, "executeScript").
# Windows PowerShell 5.1 on .NET Framework 4.x. It makes a random password ON the instance, encrypts it
# to the run's public key, writes the ciphertext to the serial console (which EC2's
# GetConsoleOutput returns), then sets it for the built-in Administrator (SID ...-500). The password
# never leaves memory in clear: not on disk, not in this task's output, not on the console.
# Afterwards (success or not) it leaves a marker, so that it never acts twice, and puts back the
# agent-config.yml the instance had before the run: its bytes are held below, in this task, that is
# inside agent-config.yml itself, which only administrators may write. (No other file is made by the
# helper: ntfs-3g would give a new file an ACL that lets everyone write it.)
# The values of $RunId, $KeyXml and $OriginalConfig below are filled in by the helper's script.
$ErrorActionPreference = 'Stop'
$RunId = '__RUN_ID__'
$KeyXml = '__KEY_XML__'
$OriginalConfig = '__ORIGINAL_CONFIG_B64__'
$Config = Join-Path $env:ProgramData 'Amazon\EC2Launch\config\agent-config.yml'
$Done = Join-Path $env:ProgramData ('Amazon\EC2Launch\state\ec2-reset-access-' + $RunId + '.done')

# One line on the serial console. EC2Launch v2 finds the console's port from the ACPI SPCR table
# (its tools\AWSAcpiSpcrReader.exe, ec2launch-v2-settings.html); the line (ciphertext only) goes to
# every serial port Windows has, COM1 when it lists none, retried while the ports are busy.
function Write-ConsoleLine([string]$Line) {
  $names = @([System.IO.Ports.SerialPort]::GetPortNames() | Sort-Object -Unique)
  if ($names.Count -eq 0) { $names = @('COM1') }
  for ($i = 0; $i -lt 30; $i++) {
    $written = 0
    foreach ($name in $names) {
      $port = $null
      try {
        $port = New-Object System.IO.Ports.SerialPort $name, 115200
        $port.WriteTimeout = 5000
        $port.Open()
        $port.WriteLine($Line)
        $written++
      } catch {
      } finally {
        if ($null -ne $port) { $port.Dispose() }
      }
    }
    if ($written -gt 0) { return }
    Start-Sleep -Seconds 2
  }
  throw 'serial console unavailable'
}

# Put the original agent-config.yml back, by writing over the file (it keeps its own ACL).
function Restore-AgentConfig {
  [System.IO.File]::WriteAllBytes($Config, [System.Convert]::FromBase64String($OriginalConfig))
}

# A uniform index below $Count from the system's CSPRNG (rejection sampling: no modulo bias).
function Get-RandomIndex($Rng, [int]$Count) {
  $bytes = New-Object byte[] 4
  $limit = [uint32]::MaxValue - ([uint32]::MaxValue % [uint32]$Count)
  do {
    $Rng.GetBytes($bytes)
    $value = [BitConverter]::ToUInt32($bytes, 0)
  } while ($value -ge $limit)
  return [int]($value % [uint32]$Count)
}

if (Test-Path -LiteralPath $Done) {
  Restore-AgentConfig
  exit 0
}
$reason = 'failed'
try {
  $admin = @(Get-CimInstance -ClassName Win32_UserAccount -Filter 'LocalAccount=True' | Where-Object { $_.SID -match '^S-1-5-21-[0-9-]+-500$' })
  if ($admin.Count -ne 1) { $reason = 'no-builtin-administrator'; throw $reason }
  if ($admin[0].Disabled) { $reason = 'administrator-disabled'; throw $reason }
  # 24 characters from four classes (each present): upper, lower, digits, symbols; no look-alikes.
  $classes = @('ABCDEFGHJKLMNPQRSTUVWXYZ', 'abcdefghijkmnopqrstuvwxyz', '23456789', '!#%+-.:=?@_')
  $alphabet = -join $classes
  $rng = New-Object System.Security.Cryptography.RNGCryptoServiceProvider
  do {
    $chars = @(1..24 | ForEach-Object { $alphabet[(Get-RandomIndex $rng $alphabet.Length)] })
    $password = -join $chars
    $missing = @($classes | Where-Object { $password.IndexOfAny($_.ToCharArray()) -lt 0 })
  } while ($missing.Count -gt 0)
  $reason = 'encrypt'
  $rsa = New-Object System.Security.Cryptography.RSACryptoServiceProvider
  $rsa.FromXmlString($KeyXml)
  # Encrypt(byte[], $true): OAEP padding (SHA-1), the scheme the run decrypts with.
  $cipher = [Convert]::ToBase64String($rsa.Encrypt([System.Text.Encoding]::UTF8.GetBytes($password), $true))
  $reason = 'console'
  Write-ConsoleLine ('ec2-reset-access:' + $RunId + ':password:' + $cipher)
  $reason = 'set-password'
  $user = [ADSI]('WinNT://' + $env:COMPUTERNAME + '/' + $admin[0].Name + ',user')
  $user.SetPassword($password)
  $user.SetInfo()
  # The run stores the password only once this line follows the password line.
  $reason = 'confirm'
  Write-ConsoleLine ('ec2-reset-access:' + $RunId + ':done')
  $reason = 'done'
} catch {
  try { Write-ConsoleLine ('ec2-reset-access:' + $RunId + ':error:' + $reason) } catch { }
} finally {
  $password = $null
  $chars = $null
  New-Item -ItemType File -Force -Path $Done | Out-Null
  Restore-AgentConfig
}
exit 0
