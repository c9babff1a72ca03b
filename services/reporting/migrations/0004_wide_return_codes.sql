-- Windows exit codes are 32-bit and often written unsigned (0x80070005 = 2147942405).
ALTER TABLE install_attempts ALTER COLUMN return_code TYPE bigint;
ALTER TABLE computer_updates ALTER COLUMN last_return_code TYPE bigint;
