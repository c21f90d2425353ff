-- Version 3: the check of the rows a process read from its row cache.
--
-- A process remembers the runs and steps it wrote, with the id of the
-- transaction that wrote them (the row's xmin), and answers reads from that
-- memory. Before a transaction relies on such a read, it locks the rows and
-- passes to fresh whether every one of them still has the xmin remembered:
-- fresh fails the statement, and with it the transaction, when one does
-- not, and the process reads the rows again.
CREATE FUNCTION fresh(ok boolean) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	IF NOT ok THEN
		RAISE EXCEPTION 'a row read from the row cache has changed since' USING ERRCODE = 'DF001';
	END IF;
	RETURN true;
END
$$;
