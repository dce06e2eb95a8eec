"""thor.dns (thor-net): not implemented yet; this distribution is an installable skeleton."""
